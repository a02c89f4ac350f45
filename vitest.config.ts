import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources, so no build is needed between edits.
    alias: {
      '@leffa-webgpu/kernels-wgsl': src('kernels-wgsl'),
      '@leffa-webgpu/core': src('core'),
      '@leffa-webgpu/models': src('models'),
      '@leffa-webgpu/train': src('train'),
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Kernel variants forced by LEFFA_FORCE_KERNELS (scripts/gpu-check.sh); nothing when it is unset.
    setupFiles: ['test/helpers/force-kernels.ts'],
    // Each file gets its own process and Dawn device; lavapipe already uses every core.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
