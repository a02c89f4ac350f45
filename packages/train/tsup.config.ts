import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', web: 'src/web.ts', cli: 'src/cli/main.ts' },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts', web: 'src/web.ts' }, compilerOptions: { paths: {} } },
  sourcemap: true,
  clean: true,
  target: 'es2022',
  external: [/^@leffa-webgpu\//, 'webgpu', 'pngjs', 'commander', 'cli-progress'],
});
