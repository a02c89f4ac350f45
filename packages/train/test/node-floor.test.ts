// Node >= 20.0.0 is the floor (engines). zlib.crc32 only exists from Node 20.15 / 22.2, and importing it by name
// crashed the PNG codecs (now `@leffa-webgpu/data`) on older Nodes ("'zlib' does not provide an export named 'crc32'"). Here a child
// process removes zlib.crc32 before anything loads, as an older Node lacks it, then imports the package and
// writes a PNG, whose chunk CRCs fast-png verifies while decoding.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'leffa-node-floor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Node floor', () => {
  it('@leffa-webgpu/data and @leffa-webgpu/train import and writes valid PNGs without zlib.crc32', () => {
    const preload = join(dir, 'no-zlib-crc32.cjs');
    writeFileSync(preload, "delete require('node:zlib').crc32;\n");
    const script = `
      const zlib = await import('node:zlib');
      if (typeof zlib.crc32 === 'function') throw new Error('zlib.crc32 was not removed');
      await import('./packages/train/src/index.ts');
      const data = await import('./packages/data/src/index.ts');
      const { decode } = await import('fast-png');
      const labels = Uint8Array.from({ length: 6 * 5 }, (_, i) => i % 4);
      const png = data.encodeLabelPng({ width: 5, height: 6, labels }, [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]);
      const img = decode(png, { checkCrc: true });
      const back = data.decodeLabelPng(png);
      console.log(JSON.stringify({ width: img.width, height: img.height, same: back.labels.every((v, i) => v === labels[i]) }));
    `;
    const out = execFileSync(
      process.execPath,
      ['--require', preload, '--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
      },
    );
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ width: 5, height: 6, same: true });
  });
});
