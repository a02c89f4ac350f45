import { readFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
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
function expectSame(
  got: Map<string, T.HostTensor>,
  want: Map<string, T.HostTensor>,
  names: string[] = [...want.keys()],
) {
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
    for (const file of ['pth_deflate.pth', 'pth_zip64.pth', 'pth_protocol4.pth'])
      expectSame(T.readPth(bytes(file), file), want);
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
    expect(() => T.readPth(flipped, 'flipped.pth')).toThrow(
      /flipped\.pth: corrupt zip archive: CRC-32 mismatch in entry 'pth_state_dict\/data\.pkl'/,
    );
    const headerless = zip64.slice();
    const second = Buffer.from(zip64).indexOf(Buffer.from('PK\x03\x04', 'latin1'), 4); // the second local header
    headerless.fill(0, second, second + 4);
    expect(() => T.readPth(headerless, 'headerless.pth')).toThrow(
      /headerless\.pth: corrupt zip archive: no local header for '.*' at byte \d+/,
    );
    expect(() => T.readPth(new Uint8Array([0x50, 0x4b]), 'tiny.pth')).toThrow(
      /tiny\.pth: not a torch\.save checkpoint \(neither a zip archive nor a legacy torch\.save pickle stream\)/,
    );
    expect(() => T.readPth(new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0, 0]), 'stub.pth')).toThrow(
      /stub\.pth: corrupt zip archive/,
    );
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
      expect(Array.from(got.get('extra.slice')!.data), file).toEqual(
        Array.from(want.get('extra.base')!.data.slice(3, 7)),
      );
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
    expect(() => T.readPth(evil, 'evil.pth')).toThrow(
      /evil\.pth: pickle references global 'os\.system', which is not allowed; only PyTorch tensor state dicts/,
    );
    const inst = legacyStream(MAGIC, VERSION, '}', '(X\x04\x00\x00\x00trueios\nsystem\n');
    expect(() => T.readPth(inst, 'inst.pth')).toThrow(
      /inst\.pth: unsupported pickle opcode 0x69 \(INST\) at byte \d+ of the pickled checkpoint/,
    );
    expect(() => T.readPth(legacyStream('K\x05'), 'five.pth')).toThrow(
      /five\.pth: starts with a pickle that is not torch\.save's magic number/,
    );
    expect(() => T.readPth(legacyStream(MAGIC, 'M\xe8\x03'), 'v1000.pth')).toThrow(
      /v1000\.pth: legacy torch\.save protocol version 1000, expected 1001/,
    );
    // A storage no tensor uses (its element size is unknown), and one used but never written.
    expect(() => T.readPth(legacyStream(MAGIC, VERSION, '}', '}', ']X\x01\x00\x00\x000a'), 'extra.pth')).toThrow(
      /extra\.pth: storage '0' is in the file but no tensor uses it/,
    );
    const tensorOf = (key: string) =>
      `ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00${key}X\x03\x00\x00\x00cpuK\x02Nt` +
      'QK\x00K\x02\x85K\x01\x85\x89ccollections\nOrderedDict\n)Rtq\x00R';
    const unwritten = legacyStream(MAGIC, VERSION, '}', `}X\x01\x00\x00\x00w${tensorOf('7')}s`, ']');
    expect(() => T.readPth(unwritten, 'unwritten.pth')).toThrow(
      /unwritten\.pth: storage '7' is used by the checkpoint but its bytes are not in the file/,
    );
    const count = (n: number) => String.fromCharCode(n, 0, 0, 0, 0, 0, 0, 0);
    const floats = '\x00\x00\x80\x3f\x00\x00\x00\x40'; // 1, 2
    const ok = new Uint8Array([
      ...unwritten.subarray(0, -2),
      ...Buffer.from(`]X\x01\x00\x00\x007a.${count(2)}${floats}`, 'latin1'),
    ]);
    expect(T.readPth(ok, 'ok.pth').get('w')).toEqual({ shape: [2], data: new Float32Array([1, 2]) });
    const wrongCount = new Uint8Array([...ok.subarray(0, -16), ...Buffer.from(`${count(3)}${floats}`, 'latin1')]);
    expect(() => T.readPth(wrongCount, 'count.pth')).toThrow(
      /count\.pth: storage '7' holds 3 elements, but the checkpoint says 2/,
    );
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

// ---------------------------------------------------------------- hostile files, built here

/** CRC-32 (the zip one). */
function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

interface ZipInput {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
  /** The uncompressed size written in the headers (default: the true one). */
  declaredSize?: number;
  /** The CRC-32 written in the headers (default: the true one). */
  crc?: number;
}

/** A minimal zip archive (no ZIP64) as torch.save or a re-zipping tool would write it. */
function zip(entries: ZipInput[]): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const body = e.deflate ? deflateRawSync(e.data) : Buffer.from(e.data);
    const crc = e.crc ?? crc32(e.data);
    const size = e.declaredSize ?? e.data.byteLength;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(e.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.byteLength, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.byteLength, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(e.deflate ? 8 : 0, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.byteLength, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.byteLength, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.byteLength + body.byteLength;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.byteLength, 12);
  end.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...locals, cd, end]));
}

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(n);
  return b.toString('latin1');
};
const unicode = (s: string) => `X${u32(s.length)}${s}`;
const tuple = (...items: number[]) => `(${items.map((n) => `J${u32(n)}`).join('')}t`;

/** data.pkl of {'w': tensor over storage '0' (numel floats) with the given size and stride}. */
function tensorPickle(numel: number, size: number[], stride: number[]): Uint8Array {
  const storage = `(${unicode('storage')}ctorch\nFloatStorage\n${unicode('0')}${unicode('cpu')}J${u32(numel)}tQ`;
  const rebuild = `ctorch._utils\n_rebuild_tensor_v2\n(${storage}K\x00${tuple(...size)}${tuple(...stride)}\x89ccollections\nOrderedDict\n)RtR`;
  return new Uint8Array(latin1(`\x80\x02}${unicode('w')}${rebuild}s.`));
}

/** A zip-format checkpoint holding data.pkl (stored) and storage '0'. */
const pthZip = (pkl: Uint8Array, storage: Omit<ZipInput, 'name'>) =>
  zip([
    { name: 'archive/data.pkl', data: pkl },
    { name: 'archive/data/0', ...storage },
  ]);

/** A zip-format checkpoint whose data.pkl is the given pickle body (protocol 2 header and STOP added). */
const pickleOnly = (body: string) =>
  zip([{ name: 'archive/data.pkl', data: new Uint8Array(latin1(`\x80\x02${body}.`)) }]);

describe('readPth, hostile files', () => {
  it('the zip writer here makes files readPth reads exactly, stored or deflated', () => {
    const values = new Float32Array([1.5, -2, 3.25, 4]);
    for (const deflate of [false, true]) {
      const got = T.readPth(
        pthZip(tensorPickle(4, [2, 2], [2, 1]), { data: new Uint8Array(values.buffer), deflate }),
        'built.pth',
      );
      expect(got.get('w')!.shape).toEqual([2, 2]);
      expect(Array.from(got.get('w')!.data)).toEqual([1.5, -2, 3.25, 4]);
    }
  });

  it('stops inflating an entry at its declared size: a bomb that lies about its size costs no more', () => {
    // 64 MiB of zeros deflate to ~64 KB; the headers claim 16 bytes.
    const bomb = pthZip(tensorPickle(4, [4], [1]), {
      data: new Uint8Array(64 << 20),
      deflate: true,
      declaredSize: 16,
      crc: 0,
    });
    expect(bomb.byteLength).toBeLessThan(100_000);
    expect(() => T.readPth(bomb, 'bomb.pth')).toThrow(
      /bomb\.pth: corrupt zip archive: entry 'archive\/data\/0' inflates past its declared 16 bytes \(a decompression bomb\?\)/,
    );
  });

  it('refuses an entry whose declared size is over the limit before inflating it; the option raises the limit', () => {
    const numel = 2 << 20; // 8 MiB of floats
    const data = new Uint8Array(numel * 4);
    data.fill(0x3f);
    const file = pthZip(tensorPickle(numel, [numel], [1]), { data, deflate: true });
    expect(() => T.readPth(file, 'big.pth', { maxExpandedBytes: 4 << 20 })).toThrow(
      /big\.pth: inflating zip entry 'archive\/data\/0' \(declared 8388608 bytes from \d+\) would bring the bytes decoded beyond the file to 8388608, over the limit of 4194304 \(a decompression bomb, or a genuinely large re-zipped checkpoint: raise PthOptions\.maxExpandedBytes\)/,
    );
    expect(T.readPth(file, 'big.pth', { maxExpandedBytes: 16 << 20 }).get('w')!.data.length).toBe(numel);
    // The default (1 GiB) refuses a 2 GiB declaration at once, without inflating anything.
    expect(T.PTH_MAX_EXPANDED_BYTES).toBe(1024 ** 3);
    const liar = pthZip(tensorPickle(4, [4], [1]), { data: new Uint8Array(16), deflate: true, declaredSize: 2 ** 31 });
    expect(() => T.readPth(liar, 'liar.pth')).toThrow(
      /liar\.pth: inflating zip entry 'archive\/data\/0' \(declared 2147483648 bytes .* over the limit of 1073741824/,
    );
  });

  it('counts the copy a stride-0 view needs against the limit', () => {
    // One float in the file, viewed as 100000 x 10000 (4 GB once copied).
    const file = pthZip(tensorPickle(1, [100000, 10000], [0, 0]), { data: new Uint8Array(4) });
    expect(() => T.readPth(file, 'view.pth')).toThrow(
      /view\.pth: copying strided tensor 'w' \(size \[100000,10000\], stride \[0,0\]\) would bring .* over the limit of 1073741824/,
    );
    const small = T.readPth(
      pthZip(tensorPickle(1, [2, 3], [0, 0]), { data: new Uint8Array(new Float32Array([7]).buffer) }),
      'small.pth',
    );
    expect(Array.from(small.get('w')!.data)).toEqual([7, 7, 7, 7, 7, 7]);
  });

  it('refuses a dict that contains itself, and absurd nesting, instead of overflowing the stack', () => {
    // d = {}; d['a'] = d
    expect(() => T.readPth(pickleOnly(`}q\x00${unicode('a')}h\x00s`), 'cycle.pth')).toThrow(
      /cycle\.pth: dict 'a' contains itself; only PyTorch tensor state dicts are accepted/,
    );
    const deep = `}${`${unicode('k')}}`.repeat(5000)}${'s'.repeat(5000)}`;
    expect(() => T.readPth(pickleOnly(deep), 'deep.pth')).toThrow(
      /deep\.pth: dicts nested more than 100 deep \(at 'k\.k\.k/,
    );
    // d0 = {}; d(i+1) = {'a': di, 'b': di}: shared, not cyclic, but 2^40 names.
    let shared = `}q\x00`;
    for (let i = 1; i <= 40; i++)
      shared = `}(${unicode('a')}${shared}${unicode('b')}h${String.fromCharCode(i - 1)}uq${String.fromCharCode(i)}`;
    expect(() => T.readPth(pickleOnly(shared), 'shared.pth')).toThrow(
      /shared\.pth: the checkpoint's dicts name more than 10000000 entries/,
    );
  });

  it('reads a list of 300000 items appended at once (APPENDS) without overflowing the stack', () => {
    const appends = `}${unicode('l')}](${'N'.repeat(300_000)}es${unicode('w')}K\x01s`;
    expect(T.readPth(pickleOnly(appends), 'appends.pth').size).toBe(0);
  });
});
