import { createReadStream, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Plugin, defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** The shipped checkpoints the page loads (main.ts); the package's other ones stay out of the site. */
export const PAGE_CHECKPOINTS = ['openpose-small', 'schp-small', 'densepose-small', 'leffa-tiny-tryon'];
const assets = here('../../packages/pipelines/assets');

/** Serves (dev) and copies into the build (`<name>/state.json`, `<name>/model.safetensors`) only PAGE_CHECKPOINTS. */
function shippedCheckpoints(): Plugin {
  const fileOf = (url: string) => {
    const m = /^\/([\w.-]+)\/([\w.-]+)$/.exec(url.split('?')[0]!);
    if (!m || !PAGE_CHECKPOINTS.includes(m[1]!)) return null;
    const file = join(assets, m[1]!, m[2]!);
    return existsSync(file) && statSync(file).isFile() ? file : null;
  };
  return {
    name: 'leffa-shipped-checkpoints',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const file = fileOf(req.url ?? '');
        if (!file) return next();
        res.setHeader('Content-Type', file.endsWith('.json') ? 'application/json' : 'application/octet-stream');
        createReadStream(file).pipe(res);
      });
    },
    generateBundle() {
      for (const name of PAGE_CHECKPOINTS) {
        for (const f of readdirSync(join(assets, name)))
          this.emitFile({ type: 'asset', fileName: `${name}/${f}`, source: readFileSync(join(assets, name, f)) });
      }
    },
  };
}

export default defineConfig({
  root: here('.'),
  publicDir: false,
  plugins: [shippedCheckpoints()],
  resolve: {
    alias: {
      '@leffa-webgpu/kernels-wgsl': here('../../packages/kernels-wgsl/src/index.ts'),
      '@leffa-webgpu/core': here('../../packages/core/src/index.ts'),
      '@leffa-webgpu/models': here('../../packages/models/src/index.ts'),
      '@leffa-webgpu/data/web': here('../../packages/data/src/web.ts'),
      '@leffa-webgpu/pipelines/web': here('../../packages/pipelines/src/web.ts'),
    },
  },
  build: { outDir: here('dist'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2048 },
});
