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

  it('rejects the tar format, unknown files and truncated or corrupt archives with a clear error', () => {
    expect(() => T.readPth(bytes('pth_legacy_tar.pth'), 'pth_legacy_tar.pth')).toThrow(
      /pth_legacy_tar\.pth: a tar archive, torch\.save's format of PyTorch <= 0\.3, which is not supported; re-save it with a current PyTorch: torch\.save\(torch\.load\(f\), f2\)/,
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
    expect(() => T.readPth(new Uint8Array([0x50, 0x4b]), 'tiny.pth')).toThrow(/tiny\.pth: not a torch\.save checkpoint \(neither a zip archive nor a legacy torch\.save pickle stream\)/);
    expect(() => T.readPth(new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0, 0]), 'stub.pth')).toThrow(/stub\.pth: corrupt zip archive/);
  });
});

/** One pickle per argument, protocol 2, back to back: the legacy format's header and whatever follows. */
function legacyStream(...pickles: string[]): Uint8Array {
  return new Uint8Array(Buffer.from(pickles.map((p) => `\x80\x02${p}.`).join(''), 'latin1'));
}
const MAGIC = '\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19'; // LONG1 0x1950a86a20f9469cfc6c
const VERSION = 'M\xe9\x03'; // BININT2 1001

describe('readPth, legacy (non-zip) format', () => {
  it('reads the same state dict as the zip format exactly, pickled with protocol 2, protocol 4 and by Python 2', () => {
    const want = expected();
    for (const file of ['pth_legacy_state_dict.pth', 'pth_legacy_protocol4.pth', 'pth_legacy_py2.pth']) {
      const got = T.readPth(bytes(file), file);
      expect([...got.keys()].sort(), file).toEqual([...want.keys()].sort());
      expectSame(got, want);
      expect(Array.from(got.get('extra.slice')!.data), file).toEqual(Array.from(want.get('extra.base')!.data.slice(3, 7)));
      expect(got.get('extra.permuted')!.shape, file).toEqual([4, 2, 3]);
    }
    const model = T.readPth(bytes('pth_legacy.pth'), 'pth_legacy.pth');
    expect([...model.keys()]).toEqual(MODEL_KEYS);
    expectSame(model, want, MODEL_KEYS);
  });

  it('unwraps an SCHP-style legacy checkpoint and strips the DataParallel prefix', () => {
    const want = expected();
    expect([...T.readPth(bytes('pth_legacy_schp_style.pth')).keys()]).toEqual(MODEL_KEYS.map((k) => `module.${k}`));
    const stripped = T.readPth(bytes('pth_legacy_schp_style.pth'), 'schp', { stripPrefix: 'module.' });
    expect([...stripped.keys()]).toEqual(MODEL_KEYS);
    expectSame(stripped, want, MODEL_KEYS);
  });

  it('reads storage views (view_metadata) as windows into their root storage', () => {
    const got = T.readPth(bytes('pth_legacy_views.pth'), 'pth_legacy_views.pth');
    const want = T.readSafetensors(bytes('pth_legacy_views_expected.safetensors')).tensors;
    expect([...got.keys()]).toEqual(['whole', 'view', 'view_strided', 'view_again', 'tail', 'other']);
    expectSame(got, want);
    expect(Array.from(got.get('view_again')!.data)).toEqual([5, 6.5, 8, 9.5]);
  });

  it('says a truncated file is truncated, wherever it is cut', () => {
    expect(() => T.readPth(bytes('pth_legacy_truncated.pth'), 'pth_legacy_truncated.pth')).toThrow(
      /pth_legacy_truncated\.pth: legacy torch\.save file ends at byte \d+ inside storage '\d+' \(\d+ x [A-Z0-9]+ ending at byte \d+\) \(file truncated\?\)/,
    );
    for (const file of ['pth_legacy_state_dict.pth', 'pth_legacy_views.pth', 'pth_legacy_py2.pth']) {
      const whole = bytes(file);
      const failures: string[] = [];
      for (let cut = 1; cut < whole.byteLength; cut++) {
        try {
          T.readPth(whole.subarray(0, cut), 'cut.pth');
          failures.push(`${cut}: no error`);
        } catch (e) {
          const msg = (e as Error).message;
          if (!/^cut\.pth: .*\(file truncated\?\)$/.test(msg)) failures.push(`${cut}: ${msg}`);
        }
      }
      expect(failures.slice(0, 5), file).toEqual([]);
    }
  });

  it('refuses big-endian files, foreign globals and pickles that are not torch.save files', () => {
    const file = bytes('pth_legacy_state_dict.pth');
    const flag = Buffer.from(file).indexOf('little_endian') + 'little_endian'.length;
    const patched = file.slice();
    const at = patched.indexOf(0x88, flag); // NEWTRUE after the key (and its BINPUT)
    expect(at - flag).toBeLessThanOrEqual(2);
    patched[at] = 0x89; // NEWFALSE
    expect(() => T.readPth(patched, 'big.pth')).toThrow(
      /big\.pth: saved on a big-endian machine \(sys_info little_endian=False\); only little-endian checkpoints are supported/,
    );
    const evil = legacyStream(MAGIC, VERSION, '}', 'cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03');
    expect(() => T.readPth(evil, 'evil.pth')).toThrow(/evil\.pth: pickle references global 'os\.system', which is not allowed; only PyTorch tensor state dicts/);
    const inst = legacyStream(MAGIC, VERSION, '}', '(X\x04\x00\x00\x00trueios\nsystem\n');
    expect(() => T.readPth(inst, 'inst.pth')).toThrow(/inst\.pth: unsupported pickle opcode 0x69 \(INST\) at byte \d+ of the pickled checkpoint/);
    expect(() => T.readPth(legacyStream('K\x05'), 'five.pth')).toThrow(/five\.pth: starts with a pickle that is not torch\.save's magic number/);
    expect(() => T.readPth(legacyStream(MAGIC, 'M\xe8\x03'), 'v1000.pth')).toThrow(/v1000\.pth: legacy torch\.save protocol version 1000, expected 1001/);
    // A storage no tensor uses (its element size is unknown), and one used but never written.
    expect(() => T.readPth(legacyStream(MAGIC, VERSION, '}', '}', ']X\x01\x00\x00\x000a'), 'extra.pth')).toThrow(
      /extra\.pth: storage '0' is in the file but no tensor uses it/,
    );
    const tensorOf = (key: string) =>
      `ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00${key}X\x03\x00\x00\x00cpuK\x02Nt` +
      'QK\x00K\x02\x85K\x01\x85\x89ccollections\nOrderedDict\n)Rtq\x00R';
    const unwritten = legacyStream(MAGIC, VERSION, '}', `}X\x01\x00\x00\x00w${tensorOf('7')}s`, ']');
    expect(() => T.readPth(unwritten, 'unwritten.pth')).toThrow(/unwritten\.pth: storage '7' is used by the checkpoint but its bytes are not in the file/);
    const count = (n: number) => String.fromCharCode(n, 0, 0, 0, 0, 0, 0, 0);
    const floats = '\x00\x00\x80\x3f\x00\x00\x00\x40'; // 1, 2
    const ok = new Uint8Array([...unwritten.subarray(0, -2), ...Buffer.from(`]X\x01\x00\x00\x007a.${count(2)}${floats}`, 'latin1')]);
    expect(T.readPth(ok, 'ok.pth').get('w')).toEqual({ shape: [2], data: new Float32Array([1, 2]) });
    const wrongCount = new Uint8Array([...ok.subarray(0, -16), ...Buffer.from(`${count(3)}${floats}`, 'latin1')]);
    expect(() => T.readPth(wrongCount, 'count.pth')).toThrow(/count\.pth: storage '7' holds 3 elements, but the checkpoint says 2/);
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
    const legacy = await T.loadPth(golden('pth_legacy_schp_style.pth'), { stripPrefix: 'module.' });
    expect(Array.from(await legacy.get('conv.weight')!.data())).toEqual(Array.from(want.get('conv.weight')!.data));
  });
});
