import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { describe, expect, it } from 'vitest';

const golden = (name: string) => fileURLToPath(new URL(`../../../test/golden/out/${name}`, import.meta.url));
const bytes = (name: string) => new Uint8Array(readFileSync(golden(name)));

/** Same names, shapes, element types and bit-exact values as the expected tensors (widened as readPth does). */
function expectSame(got: Map<string, T.HostTensor>, want: Map<string, T.HostTensor>) {
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [name, w] of want) {
    const g = got.get(name)!;
    expect(g.shape, name).toEqual(w.shape);
    expect(g.data.constructor, name).toBe(w.data.constructor);
    expect(Array.from(g.data), name).toEqual(Array.from(w.data));
  }
}

describe('readPkl (detectron2 numpy pickles)', () => {
  const want = () => T.readSafetensors(bytes('pkl_expected.safetensors')).tensors;

  it('reads the model dict exactly with pickle protocols 2, 3, 4, 5 and as Python 2 wrote it', () => {
    for (const file of [
      'pkl_protocol2.pkl',
      'pkl_protocol3.pkl',
      'pkl_protocol4.pkl',
      'pkl_protocol5.pkl',
      'pkl_py2.pkl',
    ]) {
      const got = T.readPkl(bytes(file), file);
      expectSame(got, want());
      // The cases easy to get silently wrong: column-major data, 0-d, empty, 64-bit integers.
      expect(got.get('fortran')!.shape, file).toEqual([2, 3, 4]);
      expect(Array.from(got.get('fortran')!.data.slice(0, 5)), file).toEqual([-3, -2.5, -2, -1.5, -1]);
      expect(got.get('scalar0d'), file).toEqual({ shape: [], data: new Float32Array([2.5]) });
      expect(got.get('empty')!.shape, file).toEqual([0, 3]);
      expect(Array.from(got.get('int64')!.data), file).toEqual([0, -3, 2147483647, -2147483648]);
      expect(got.get('big')!.shape, file).toEqual([40000]);
    }
  });

  it('reads a bare (unwrapped) dict of arrays with nested names, and strips a prefix', () => {
    const got = T.readPkl(bytes('pkl_bare.pkl'), 'pkl_bare.pkl');
    expect([...got.keys()]).toEqual(['a.weight', 'b.c']);
    expect(Array.from(got.get('a.weight')!.data)).toEqual([7, -8]);
    expect([...T.readPkl(bytes('pkl_bare.pkl'), 'pkl_bare.pkl', { stripPrefix: 'b.' }).keys()]).toEqual([
      'a.weight',
      'c',
    ]);
  });

  it('refuses hostile or foreign pickles with an error naming the file and the reason', () => {
    expect(() => T.readPkl(bytes('pkl_evil.pkl'), 'pkl_evil.pkl')).toThrow(
      /pkl_evil\.pkl: pickle references global 'os\.system', which is not allowed; only pickled dicts of numpy arrays are accepted/,
    );
    expect(() => T.readPkl(bytes('pkl_object.pkl'), 'pkl_object.pkl')).toThrow(
      /pkl_object\.pkl: the pickle: numpy array has numpy dtype 'O8'; only f4, .* arrays are read/,
    );
    expect(() => T.readPkl(bytes('pkl_bigendian.pkl'), 'pkl_bigendian.pkl')).toThrow(
      /pkl_bigendian\.pkl: the pickle: numpy array is big-endian \('>f4'\)/,
    );
    expect(() => T.readPkl(bytes('pkl_short.pkl'), 'pkl_short.pkl')).toThrow(
      /pkl_short\.pkl: the pickle: numpy array of shape \[4\] and dtype 'f4' needs 16 bytes, the pickle holds 12/,
    );
    // torch.save's legacy stream starts with a pickle of the magic number, then storages as persistent ids.
    expect(() => T.readPkl(bytes('pkl_torch_legacy.pkl'), 'pkl_torch_legacy.pkl')).toThrow(
      /pkl_torch_legacy\.pkl: .*(bytes follow the pickle's STOP|torch\.save file)/,
    );
    expect(() => T.readPkl(new Uint8Array([0x50, 0x4b, 3, 4]), 'zip.pkl')).toThrow(
      /zip\.pkl: not a pickle of protocol 2 or later \(first byte 0x50\)/,
    );
    // readPth still refuses bytes opcodes and numpy globals: the numpy allowances are the .pkl reader's only.
    const p3 = bytes('pkl_protocol3.pkl');
    expect(() => T.readPth(p3, 'as.pth')).toThrow(/as\.pth: /);
  });

  it('says a truncated pickle is truncated, wherever it is cut', () => {
    const whole = bytes('pkl_protocol4.pkl');
    for (const cut of [1, 2, 40, 200, whole.byteLength >> 1, whole.byteLength - 1]) {
      expect(() => T.readPkl(whole.subarray(0, cut), 'cut.pkl'), `cut at ${cut}`).toThrow(
        /cut\.pkl: .*(ends unexpectedly|truncated)/,
      );
    }
  });
});
