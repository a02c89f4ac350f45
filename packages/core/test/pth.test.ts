import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

const golden = (name: string) => fileURLToPath(new URL(`../../../test/golden/out/${name}`, import.meta.url));
const bytes = (name: string) => new Uint8Array(readFileSync(golden(name)));
const expected = () => T.readSafetensors(bytes('pth_expected.safetensors')).tensors;

const MODEL_KEYS = [
  'conv.weight',
  'conv.bias',
  'bn.weight',
  'bn.bias',
  'bn.running_mean',
  'bn.running_var',
  'bn.num_batches_tracked',
  'fc.weight',
  'fc.bias',
];

/** Same names, shapes, element types and bit-exact values. */
function expectSame(got: Map<string, T.HostTensor>, want: Map<string, T.HostTensor>, names: string[] = [...want.keys()]) {
  for (const name of names) {
    const g = got.get(name);
    const w = want.get(name)!;
    expect(g, name).toBeDefined();
    expect(g!.shape, name).toEqual(w.shape);
    expect(g!.data.constructor, name).toBe(w.data.constructor);
    expect(Array.from(g!.data), name).toEqual(Array.from(w.data));
  }
}

describe('readPth', () => {
  it('reads a torch.save state dict exactly: views, offsets, every dtype', () => {
    const got = T.readPth(bytes('pth_state_dict.pth'), 'pth_state_dict.pth');
    const want = expected();
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    expectSame(got, want);
    // Spot checks of the cases that are easy to get silently wrong.
    expect(got.get('extra.transposed')!.shape).toEqual([4, 3]);
    expect(Array.from(got.get('extra.slice')!.data)).toEqual(Array.from(want.get('extra.base')!.data.slice(3, 7)));
    expect(got.get('extra.strided')!.shape).toEqual([2, 3]);
    expect(got.get('extra.scalar')).toEqual({ shape: [], data: new Float32Array([2.5]) });
    expect(got.get('bn.num_batches_tracked')).toEqual({ shape: [], data: new Int32Array([2]) });
    expect(Array.from(got.get('extra.int64')!.data)).toEqual([0, -3, 2147483647, -2147483648]);
    expect(got.get('extra.empty')!.shape).toEqual([0, 3]);
  });

  it('reads the same state dict deflated, with ZIP64 records and pickled with protocol 4', () => {
    const want = expected();
    for (const file of ['pth_deflate.pth', 'pth_zip64.pth', 'pth_protocol4.pth']) expectSame(T.readPth(bytes(file), file), want);
  });

  it('unwraps an SCHP-style checkpoint and strips the DataParallel prefix', () => {
    const want = expected();
    const wrapped = T.readPth(bytes('pth_schp_style.pth'));
    expect([...wrapped.keys()]).toEqual(MODEL_KEYS.map((k) => `module.${k}`));
    const stripped = T.readPth(bytes('pth_schp_style.pth'), 'schp', { stripPrefix: 'module.' });
    expect([...stripped.keys()]).toEqual(MODEL_KEYS);
    expectSame(stripped, want, MODEL_KEYS);
  });

  it('refuses a pickle that references os.system, naming the file and the global', () => {
    expect(() => T.readPth(bytes('pth_evil.pth'), 'pth_evil.pth')).toThrow(
      /pth_evil\.pth: pickle references global 'os\.system', which is not allowed; only PyTorch tensor state dicts are accepted/,
    );
    expect(() => T.readPth(bytes('pth_bad_opcode.pth'), 'pth_bad_opcode.pth')).toThrow(
      /pth_bad_opcode\.pth: unsupported pickle opcode 0x69 \(INST\) at byte \d+ of data\.pkl; only PyTorch tensor state dicts/,
    );
  });

  it('rejects the legacy format and truncated or corrupt archives with a clear error', () => {
    expect(() => T.readPth(bytes('pth_legacy.pth'), 'pth_legacy.pth')).toThrow(
      /pth_legacy\.pth: .*legacy torch\.save format.*not supported; re-save it with torch\.save\(sd, path\) in PyTorch >= 1\.6/,
    );
    const whole = bytes('pth_state_dict.pth');
    expect(() => T.readPth(whole.slice(0, whole.byteLength >> 1), 'half.pth')).toThrow(
      /half\.pth: corrupt zip archive: no end-of-central-directory record \(file truncated\?\)/,
    );
    // Central directory intact, but the data it describes damaged.
    const zip64 = bytes('pth_zip64.pth');
    const flipped = zip64.slice();
    flipped[zip64.indexOf(0x80, 30)]! ^= 1; // the pickle's PROTO byte, inside the first entry
    expect(() => T.readPth(flipped, 'flipped.pth')).toThrow(/flipped\.pth: corrupt zip archive: CRC-32 mismatch in entry 'pth_state_dict\/data\.pkl'/);
    const headerless = zip64.slice();
    const second = Buffer.from(zip64).indexOf(Buffer.from('PK\x03\x04', 'latin1'), 4); // the second local header
    headerless.fill(0, second, second + 4);
    expect(() => T.readPth(headerless, 'headerless.pth')).toThrow(/headerless\.pth: corrupt zip archive: no local header for '.*' at byte \d+/);
    expect(() => T.readPth(new Uint8Array([0x50, 0x4b]), 'tiny.pth')).toThrow(/tiny\.pth: .*legacy torch\.save format/);
    expect(() => T.readPth(new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0, 0]), 'stub.pth')).toThrow(/stub\.pth: corrupt zip archive/);
  });
});

describe('loadPth', () => {
  beforeAll(async () => {
    await T.init();
  });

  it('uploads the tensors to the device', async () => {
    const loaded = await T.loadPth(golden('pth_schp_style.pth'), { stripPrefix: 'module.' });
    const want = expected();
    const w = loaded.get('conv.weight')!;
    expect([...w.shape]).toEqual([3, 2, 3, 3]);
    expect(Array.from(await w.data())).toEqual(Array.from(want.get('conv.weight')!.data));
    const n = loaded.get('bn.num_batches_tracked')!;
    expect(n.dtype).toBe('int32');
    expect(Array.from(await n.intData())).toEqual([2]);
    await expect(T.loadPth('/nonexistent/model.pth')).rejects.toThrow(/cannot read '\/nonexistent\/model\.pth'/);
  });
});
