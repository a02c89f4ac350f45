import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

const golden = (name: string) => fileURLToPath(new URL(`../../../test/golden/out/${name}.safetensors`, import.meta.url));

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
    [0.1, -2.5, 1e-3, 65504, 3.14159].forEach((v, i) => expect(Math.abs(half[i]! - v)).toBeLessThanOrEqual(Math.abs(v) * 1e-3));
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
    await expect(T.loadSafetensors('/nonexistent/file.safetensors')).rejects.toThrow(/cannot open '\/nonexistent\/file.safetensors'/);
  });
});
