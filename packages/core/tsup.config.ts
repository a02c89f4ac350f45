import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  // Public types name GPUDevice, GPUBuffer & co.: their declarations (@webgpu/types, a dependency) come along,
  // with the DOM declarations they are written against (BufferSource, EventTarget, ImageData...).
  dts: { compilerOptions: { paths: {} }, banner: '/// <reference lib="dom" />\n/// <reference types="@webgpu/types" />' },
  sourcemap: true,
  clean: true,
  target: 'es2022',
  external: [/^@leffa-webgpu\//, 'webgpu'],
});
