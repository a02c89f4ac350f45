import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string, entry: string) => fileURLToPath(new URL(`./packages/${pkg}/src/${entry}.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources, so no build is needed between edits.
    alias: [
      ...['kernels-wgsl', 'core', 'models', 'data', 'pipelines', 'train'].map((pkg) => ({ find: new RegExp(`^@leffa-webgpu/${pkg}$`), replacement: src(pkg, 'index') })),
      ...['data', 'pipelines'].map((pkg) => ({ find: new RegExp(`^@leffa-webgpu/${pkg}/web$`), replacement: src(pkg, 'web') })),
    ],
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
