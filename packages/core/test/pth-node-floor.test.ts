// Deflated .pth entries need Node's zlib, which pth.ts may not import statically (browsers). It took it from
// process.getBuiltinModule, which only exists from Node 20.16 / 22.3, so loadPth of a re-zipped (deflated)
// checkpoint failed on older Nodes within the engines range (>= 20.0.0). A child process without
// process.getBuiltinModule stands in for such a Node.
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
  const out = execFileSync(process.execPath, ['--require', preload, '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe('deflated .pth without process.getBuiltinModule (Node < 20.16)', () => {
  it.skipIf(!existsSync(deflated))('loadPth reads it as readPth does with zlib at hand; readPth alone says what to do', () => {
    const got = child(`
      if (process.getBuiltinModule) throw new Error('process.getBuiltinModule was not removed');
      const T = await import('./packages/core/src/index.ts');
      const { readFileSync } = await import('node:fs');
      let error = '';
      try { T.readPth(new Uint8Array(readFileSync(${JSON.stringify(deflated)})), 'x.pth'); } catch (e) { error = e.message; }
      await T.init();
      const loaded = await T.loadPth(${JSON.stringify(deflated)});
      const shapes = {};
      for (const [k, t] of loaded) shapes[k] = t.shape;
      // After loadPth, zlib is loaded, so readPth of bytes works too: the host values, exactly.
      const host = {};
      for (const [k, h] of T.readPth(new Uint8Array(readFileSync(${JSON.stringify(deflated)})), 'x.pth')) host[k] = Array.from(h.data);
      console.log(JSON.stringify({ error, shapes, host }));
    `) as { error: string; shapes: Record<string, number[]>; host: Record<string, number[]> };
    expect(got.error).toMatch(/x\.pth: zip entry '.*' is deflated, which needs Node's zlib \(readPth on Node < 20\.16: use loadPth/);
    // The same tensors as this (zlib-capable) process reads.
    const want = readPth(new Uint8Array(readFileSync(deflated)), 'x.pth');
    expect(want.size).toBeGreaterThan(0);
    expect(Object.keys(got.shapes).sort()).toEqual([...want.keys()].sort());
    for (const [k, h] of want) {
      expect(got.shapes[k], k).toEqual(h.shape);
      expect(got.host[k], k).toEqual(Array.from(h.data));
    }
  }, 60_000);
});
