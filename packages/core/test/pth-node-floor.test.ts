// Deflated .pth entries are inflated with fflate, so reading them needs neither Node's zlib (absent in browsers)
// nor process.getBuiltinModule (absent before Node 20.16 / 22.3). A child process where both are unavailable
// (getBuiltinModule deleted, any import of zlib refused by a resolve hook) stands in for such a runtime.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readPth } from '../src/index.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const deflated = join(root, 'test/golden/out/pth_deflate.pth'); // written by `npm run golden` (scripts/test.sh)
const dir = mkdtempSync(join(tmpdir(), 'leffa-pth-floor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function child(script: string): unknown {
  const preload = join(dir, 'no-get-builtin-module.cjs');
  writeFileSync(preload, 'delete process.getBuiltinModule;\n');
  const hooks = join(dir, 'no-zlib.mjs');
  writeFileSync(
    hooks,
    `export async function resolve(spec, ctx, next) {\n` +
      `  if (spec === 'zlib' || spec === 'node:zlib') throw new Error('zlib is not available here');\n` +
      `  return next(spec, ctx);\n}\n`,
  );
  const register = join(dir, 'register-no-zlib.mjs');
  writeFileSync(
    register,
    `import { register } from 'node:module';\nregister(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`,
  );
  const out = execFileSync(
    process.execPath,
    ['--require', preload, '--import', register, '--import', 'tsx', '--input-type=module', '-e', script],
    {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    },
  );
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe('deflated .pth without zlib or process.getBuiltinModule (browsers, Node < 20.16)', () => {
  it.skipIf(!existsSync(deflated))(
    'readPth and loadPth read it as this process does',
    () => {
      const got = child(`
      if (process.getBuiltinModule) throw new Error('process.getBuiltinModule was not removed');
      let zlibRefused = false;
      try { await import('node:zlib'); } catch { zlibRefused = true; }
      const T = await import('./packages/core/src/index.ts');
      const { readFileSync } = await import('node:fs');
      const host = {};
      for (const [k, h] of T.readPth(new Uint8Array(readFileSync(${JSON.stringify(deflated)})), 'x.pth')) host[k] = Array.from(h.data);
      await T.init();
      const loaded = await T.loadPth(${JSON.stringify(deflated)});
      const shapes = {};
      for (const [k, t] of loaded) shapes[k] = t.shape;
      console.log(JSON.stringify({ zlibRefused, shapes, host }));
    `) as { zlibRefused: boolean; shapes: Record<string, number[]>; host: Record<string, number[]> };
      expect(got.zlibRefused).toBe(true);
      // The same tensors as this process reads.
      const want = readPth(new Uint8Array(readFileSync(deflated)), 'x.pth');
      expect(want.size).toBeGreaterThan(0);
      expect(Object.keys(got.shapes).sort()).toEqual([...want.keys()].sort());
      for (const [k, h] of want) {
        expect(got.shapes[k], k).toEqual(h.shape);
        expect(got.host[k], k).toEqual(Array.from(h.data));
      }
    },
    60_000,
  );
});
