import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  root: here('.'),
  // The package's shipped checkpoints are served (and copied into the build) as static files.
  publicDir: here('../../packages/train/assets'),
  resolve: {
    alias: {
      '@leffa-webgpu/kernels-wgsl': here('../../packages/kernels-wgsl/src/index.ts'),
      '@leffa-webgpu/core': here('../../packages/core/src/index.ts'),
      '@leffa-webgpu/models': here('../../packages/models/src/index.ts'),
      '@leffa-webgpu/train/web': here('../../packages/train/src/web.ts'),
    },
  },
  build: { outDir: here('dist'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2048 },
});
