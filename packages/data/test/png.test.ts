// The PNG codec against PIL: PNGs of every colour type and bit depth written by PIL (test/golden/cases_png.py) decode
// to the pixels computed from the arrays that went in, palette label maps written here read back in PIL with the
// same palette and indices, and the codec loads in a process where its files may import no Node module.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode } from 'fast-png';
import { afterAll, describe, expect, it } from 'vitest';
import { LIP_PALETTE, decodeLabelPng, decodePng, encodeLabelPng, encodePng } from '@leffa-webgpu/data/web';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const golden = join(root, 'test/golden/out'); // written by `npm run golden` (scripts/test.sh)
const dir = mkdtempSync(join(tmpdir(), 'leffa-png-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface PngCase {
  width: number;
  height: number;
  rgb: number[];
  labels: number[];
}
const cases: Record<string, PngCase> = existsSync(join(golden, 'png.json'))
  ? JSON.parse(readFileSync(join(golden, 'png.json'), 'utf8'))
  : {};
const file = (name: string) => new Uint8Array(readFileSync(join(golden, 'png', `${name}.png`)));

const python = '/usr/bin/python3';
const pil = spawnSync(python, ['-c', 'import PIL, numpy'], { encoding: 'utf8' });
const noPil =
  pil.status === 0
    ? null
    : `${python} with PIL and numpy is not available (${pil.error?.message ?? pil.stderr.trim().split('\n').pop()})`;
if (noPil) console.log(`png.test: PIL read-back skipped: ${noPil}`);

describe('PNG files written by PIL', () => {
  it.skipIf(Object.keys(cases).length === 0)('every colour type and bit depth decodes to RGB and to labels', () => {
    expect(Object.keys(cases).sort()).toEqual(
      [
        'bilevel',
        'grey',
        'grey16',
        'grey4',
        'grey_alpha',
        'grey_alpha16',
        'grey_key',
        'palette4',
        'palette8',
        'palette_repeated',
        'palette_trns',
        'rgb',
        'rgb16',
        'rgb_key',
        'rgba',
        'rgba16',
      ].sort(),
    );
    for (const [name, c] of Object.entries(cases)) {
      const img = decodePng(file(name), name);
      expect([img.width, img.height], name).toEqual([c.width, c.height]);
      expect(Array.from(img.data), name).toEqual(c.rgb);
      expect(Array.from(decodeLabelPng(file(name), name).labels), name).toEqual(c.labels);
    }
  });

  it.skipIf(Object.keys(cases).length === 0)(
    'refuses interlaced sub-byte PNGs and corrupt chunks by name; the size check comes first',
    () => {
      expect(() => decodePng(file('bilevel_adam7'), 'i.png')).toThrow(
        /i\.png: interlaced \(Adam7\) PNG with 1-bit samples is not supported/,
      );
      const corrupt = file('rgb');
      corrupt[corrupt.length - 20]! ^= 0xff; // inside IDAT: its CRC no longer matches
      expect(() => decodePng(corrupt, 'c.png')).toThrow(/c\.png: not a readable PNG \(.*CRC/i);
      // A huge declared size is refused before anything else is looked at, the IHDR CRC included.
      const bomb = file('rgb');
      new DataView(bomb.buffer).setUint32(16, 20000);
      new DataView(bomb.buffer).setUint32(20, 20000);
      expect(() => decodePng(bomb, 'b.png')).toThrow(/b\.png: the image declares 20000x20000 pixels/);
      expect(() => decodeLabelPng(bomb, 'b.png')).toThrow(/b\.png: the image declares 20000x20000 pixels/);
    },
  );
});

describe('PNG encoding', () => {
  const W = 23;
  const H = 9;
  const rgb = Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 37 + (i >> 5)) % 256);
  const labels = Uint8Array.from({ length: W * H }, (_, i) => (i * 7) % 20);

  it('round-trips RGB, grey and label maps; interlaced and 16-bit files read as their plain 8-bit twins', () => {
    expect(decodePng(encodePng({ width: W, height: H, data: rgb }))).toEqual({ width: W, height: H, data: rgb });
    const grey = decodePng(encodePng({ width: W, height: H, data: labels }));
    expect(Array.from(grey.data)).toEqual(Array.from(labels).flatMap((v) => [v, v, v]));
    expect(decodeLabelPng(encodeLabelPng({ width: W, height: H, labels }, LIP_PALETTE)).labels).toEqual(labels);
    const adam7 = encode({ width: W, height: H, data: rgb, depth: 8, channels: 3 }, { interlace: 'Adam7' });
    expect(decodePng(adam7).data).toEqual(rgb);
    // v * 257 is v at 16 bits exactly (round(v * 257 * 255 / 65535) = v).
    const wide = encode(
      { width: W, height: H, data: Uint16Array.from(rgb, (v) => v * 257), depth: 16, channels: 3 },
      { interlace: 'Adam7' },
    );
    expect(decodePng(wide).data).toEqual(rgb);
  });

  it('names bad input', () => {
    expect(() => encodePng({ width: W, height: H, data: new Uint8Array(W * H * 2) })).toThrow(
      /encodePng: 414 bytes is neither RGB nor grey for 23x9/,
    );
    expect(() => encodeLabelPng({ width: W, height: H, labels }, LIP_PALETTE.slice(0, 5))).toThrow(
      /encodeLabelPng: label 7 has no palette colour \(5 entries\)/,
    );
    expect(() => encodeLabelPng({ width: W, height: H, labels }, [])).toThrow(
      /encodeLabelPng: 0 palette entries, expected 1\.\.256/,
    );
    expect(() => encodeLabelPng({ width: W, height: 2, labels }, LIP_PALETTE)).toThrow(
      /encodeLabelPng: 207 labels for 23x2/,
    );
    expect(() => decodeLabelPng(new Uint8Array([0xff, 0xd8, 0xff, 0xe0]), 'x.jpg')).toThrow(
      /x\.jpg: label maps must be PNG/,
    );
  });

  it.skipIf(noPil !== null)('PIL reads a label map back as mode P with the same palette and indices', () => {
    const path = join(dir, 'labels.png');
    writeFileSync(path, encodeLabelPng({ width: W, height: H, labels }, LIP_PALETTE));
    const out = execFileSync(
      python,
      [
        '-c',
        'import sys, json, numpy as np; from PIL import Image; im = Image.open(sys.argv[1]); print(json.dumps({"mode": im.mode, "size": im.size, "palette": im.getpalette()[:60], "labels": np.array(im).reshape(-1).tolist()}))',
        path,
      ],
      { encoding: 'utf8' },
    );
    const got = JSON.parse(out);
    expect(got.mode).toBe('P');
    expect(got.size).toEqual([W, H]);
    expect(got.palette).toEqual(LIP_PALETTE.flat());
    expect(got.labels).toEqual(Array.from(labels));
  });
});

describe('the PNG codec in a runtime without Node modules', () => {
  it('loads and round-trips when its files (and fast-png, fflate, iobuffer, resolved for browsers) may import no Node builtin', () => {
    const hooks = join(dir, 'no-builtins.mjs');
    writeFileSync(
      hooks,
      `import { builtinModules } from 'node:module';\n` +
        `const codec = /\\/(packages\\/data\\/src|node_modules\\/(fast-png|fflate|iobuffer))\\//;\n` +
        `export async function resolve(spec, ctx, next) {\n` +
        `  const builtin = spec.startsWith('node:') || builtinModules.includes(spec);\n` +
        `  const inCodec = codec.test(ctx.parentURL ?? '');\n` +
        `  if (builtin && inCodec) throw new Error(ctx.parentURL + ' imports ' + spec);\n` +
        `  if (!inCodec && !/^(fast-png|fflate|iobuffer)$/.test(spec)) return next(spec, ctx);\n` +
        // Resolved as a bundler does for browsers: fflate's 'node' export would pick its worker_threads build.
        `  return next(spec, { ...ctx, conditions: [...ctx.conditions.filter((c) => c !== 'node'), 'browser'] });\n}\n`,
    );
    const register = join(dir, 'register.mjs');
    writeFileSync(
      register,
      `import { register } from 'node:module';\nregister(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`,
    );
    const script = `
      const data = await import('./packages/data/src/web.ts');
      const labels = Uint8Array.from({ length: 35 }, (_, i) => i % 3);
      const back = data.decodeLabelPng(data.encodeLabelPng({ width: 7, height: 5, labels }, [[0, 0, 0], [9, 9, 9], [1, 2, 3]]));
      const rgb = data.decodePng(data.encodePng({ width: 7, height: 5, data: Uint8Array.from({ length: 105 }, (_, i) => i) }));
      console.log(JSON.stringify({ labels: back.labels.every((v, i) => v === labels[i]), rgb: rgb.data.every((v, i) => v === i) }));
    `;
    const out = execFileSync(
      process.execPath,
      ['--import', register, '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: root, encoding: 'utf8' },
    );
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ labels: true, rgb: true });
  }, 60_000);
});
