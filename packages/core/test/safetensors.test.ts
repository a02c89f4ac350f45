import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

const golden = (name: string) =>
  fileURLToPath(new URL(`../../../test/golden/out/${name}.safetensors`, import.meta.url));

beforeAll(async () => {
  await T.init();
});

describe('safetensors', () => {
  it('reads every dtype of a file written by Python, widening to float32/int32', async () => {
    const loaded = await T.loadSafetensors(golden('st_dtypes'));
    const expected = T.readSafetensors(new Uint8Array(readFileSync(golden('st_expected')))).tensors;
    for (const [name, e] of expected) {
      const t = loaded.get(name)!;
      expect([...t.shape], name).toEqual(e.shape);
      expect(t.dtype, name).toBe(e.data instanceof Int32Array ? 'int32' : 'float32');
      const values = t.dtype === 'int32' ? await t.intData() : await t.data();
      expect(Array.from(values), name).toEqual(Array.from(e.data));
    }
    expect([...loaded.get('empty')!.shape]).toEqual([0, 4]);
  });

  it('round-trips F32 exactly and F16 to half precision, written atomically', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'st-'));
    const a = T.tensor([0.1, -2.5, 1e-3, 65504, 3.14159], [5]);
    const idx = T.tensor(new Int32Array([1, -2, 3]));
    await T.saveSafetensors(join(dir, 'f32.safetensors'), { a, idx }, { metadata: { note: 'hello' } });
    await T.saveSafetensors(join(dir, 'f16.safetensors'), { a }, { dtype: 'F16' });
    const back = await T.loadSafetensors(join(dir, 'f32.safetensors'));
    expect(Array.from(await back.get('a')!.data())).toEqual(Array.from(await a.data()));
    expect(Array.from(await back.get('idx')!.intData())).toEqual([1, -2, 3]);
    const half = await (await T.loadSafetensors(join(dir, 'f16.safetensors'))).get('a')!.data();
    [0.1, -2.5, 1e-3, 65504, 3.14159].forEach((v, i) =>
      expect(Math.abs(half[i]! - v)).toBeLessThanOrEqual(Math.abs(v) * 1e-3),
    );
    const { metadata } = T.readSafetensors(new Uint8Array(readFileSync(join(dir, 'f32.safetensors'))));
    expect(metadata.note).toBe('hello');
  });

  it('rejects corrupt files with a clear error', async () => {
    const cases: [string, RegExp][] = [
      ['st_bad_length', /bad header length 1000000000/],
      ['st_overlap', /tensors 'f32' and 'g' overlap/],
      ['st_truncated', /ends at byte 60 but the data section has 20 bytes/],
      ['st_wrong_size', /needs 80 bytes but data_offsets span 60/],
      ['st_bad_dtype', /unsupported dtype "Q7"/],
      ['st_bad_json', /header is not valid JSON/],
    ];
    for (const [file, message] of cases) await expect(T.loadSafetensors(golden(file)), file).rejects.toThrow(message);
    await expect(T.loadSafetensors('/nonexistent/file.safetensors')).rejects.toThrow(
      /cannot open '\/nonexistent\/file.safetensors'/,
    );
  });

  it('validates headers strictly: dtype names, shapes, offsets and __metadata__', () => {
    /** A file with the given header and `data` bytes of zeros. */
    const file = (header: unknown, data = 0) => {
      const json = new TextEncoder().encode(JSON.stringify(header));
      const out = new Uint8Array(8 + json.byteLength + data);
      new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
      out.set(json, 8);
      return out;
    };
    const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
    expect(T.readSafetensors(file({ a: ok, __metadata__: { note: 'x' } }, 8), 'good').metadata).toEqual({ note: 'x' });
    const cases: [unknown, RegExp][] = [
      // Names Object.prototype has must not pass for dtypes.
      [
        { a: { ...ok, dtype: '__proto__' } },
        /bad: tensor 'a' has unsupported dtype "__proto__" \(expected one of F32, F16/,
      ],
      [{ a: { ...ok, dtype: 'constructor' } }, /tensor 'a' has unsupported dtype "constructor"/],
      [
        { a: { dtype: 'F32', shape: [0, 1e300], data_offsets: [0, 0] } },
        /tensor 'a' has an invalid shape \[0,1e\+300\]/,
      ],
      [
        { a: { dtype: 'F32', shape: [0, 2 ** 40, 2 ** 40], data_offsets: [0, 0] } },
        /tensor 'a' has shape \[0,1099511627776,1099511627776\], whose element count is too large/,
      ],
      [
        { a: { dtype: 'F32', shape: new Array(65).fill(1), data_offsets: [0, 4] } },
        /tensor 'a' has an invalid shape .* \(expected at most 64 non-negative integers\)/,
      ],
      [{ a: { dtype: 'F32', shape: [2.5], data_offsets: [0, 8] } }, /tensor 'a' has an invalid shape \[2.5\]/],
      [
        { a: { ...ok, data_offsets: [0, 8, 16] } },
        /tensor 'a' has invalid data_offsets \[0,8,16\] \(expected \[begin, end\]/,
      ],
      [{ a: { ...ok, data_offsets: [-8, 0] } }, /tensor 'a' has invalid data_offsets \[-8,0\]/],
      [{ a: null }, /tensor 'a' is described by null, expected an object \{dtype, shape, data_offsets\}/],
      [{ a: ok, __metadata__: null }, /bad: __metadata__ is null, expected an object of strings/],
      [{ a: ok, __metadata__: ['x'] }, /bad: __metadata__ is an array, expected an object of strings/],
      [{ a: ok, __metadata__: { step: 3 } }, /bad: __metadata__ entry 'step' is 3, expected a string/],
    ];
    for (const [header, message] of cases)
      expect(() => T.readSafetensors(file(header, 8), 'bad'), JSON.stringify(header).slice(0, 80)).toThrow(message);
  });

  it('a failed save leaves neither the target nor a temporary file behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'st-fail-'));
    const a = T.tensor([1, 2, 3], [3]);
    // The write itself fails (injected fault after the temporary file was opened).
    const fs = await import('node:fs/promises');
    const failing: T.FileSystem = {
      ...fs,
      open: (async (path: string, flags: string) => {
        const handle = await fs.open(path, flags);
        return Object.assign(Object.create(handle) as typeof handle, {
          writeFile: async (data: Uint8Array) => {
            await handle.writeFile(data.subarray(0, 5));
            throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
          },
          close: () => handle.close(),
        });
      }) as typeof fs.open,
    };
    await expect(T.saveSafetensors(join(dir, 'a.safetensors'), { a }, { fs: failing })).rejects.toThrow(/EIO/);
    expect(readdirSync(dir)).toEqual([]);
    // Non-finite values are refused before anything is written, naming the tensor.
    const bad = T.tensor([1, NaN, Infinity], [3]);
    await expect(T.saveSafetensors(join(dir, 'b.safetensors'), { a, bad }, { requireFinite: true })).rejects.toThrow(
      /b\.safetensors': tensor 'bad' has 2 of 3 values NaN or infinite; not written/,
    );
    expect(readdirSync(dir)).toEqual([]);
    await T.saveSafetensors(join(dir, 'c.safetensors'), { a }, { requireFinite: true });
    expect(readdirSync(dir)).toEqual(['c.safetensors']);
  });
});
