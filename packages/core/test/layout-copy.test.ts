import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

/*
 * Layout copies (permute, slice, expand, concat) move four values per invocation when the innermost run, the
 * strides and the offset allow it, and one otherwise. Both forms must give the same exact copy, for float32
 * and float16 storage.
 */

let device: T.Device;
beforeAll(async () => {
  device = await T.init();
});

const iota = (n: number) => Array.from({ length: n }, (_, i) => i * 0.5 - 7);
const sizeOf = (s: number[]) => s.reduce((a, b) => a * b, 1);
const stridesOf = (s: number[]) => s.map((_, d) => sizeOf(s.slice(d + 1)));

/** Every coordinate of `shape` in row-major order. */
function* coords(shape: number[]): Generator<number[]> {
  const n = sizeOf(shape);
  for (let i = 0; i < n; i++) yield shape.map((s, d) => Math.floor(i / sizeOf(shape.slice(d + 1))) % s);
}

function permuteRef(data: number[], shape: number[], dims: number[]): number[] {
  const st = stridesOf(shape);
  return [...coords(dims.map((d) => shape[d]!))].map((c) => data[c.reduce((o, v, k) => o + v * st[dims[k]!]!, 0)]!);
}

function concatRef(parts: { data: number[]; shape: number[] }[], axis: number): number[] {
  const outShape = [...parts[0]!.shape];
  outShape[axis] = parts.reduce((s, p) => s + p.shape[axis]!, 0);
  return [...coords(outShape)].map((c) => {
    let at = c[axis]!;
    for (const p of parts) {
      if (at < p.shape[axis]!) {
        const local = c.map((v, d) => (d === axis ? at : v));
        return p.data[local.reduce((o, v, d) => o + v * stridesOf(p.shape)[d]!, 0)]!;
      }
      at -= p.shape[axis]!;
    }
    throw new Error('unreachable');
  });
}

/** The copy kernels `fn` dispatches, by key, and its result as numbers. */
async function copies(fn: () => T.Tensor): Promise<{ keys: string[]; values: number[] }> {
  let out: T.Tensor | undefined;
  const times = await device.profile(() => {
    out = fn();
  });
  const values = [...(await out!.float().data())];
  return { keys: [...times.keys()].filter((k) => /^(gather|scatter):/.test(k)), values };
}

const usesVec4 = (keys: string[]) => keys.length > 0 && keys.every((k) => k.includes(':vec4'));
const usesScalar = (keys: string[]) => keys.length > 0 && keys.every((k) => !k.includes(':vec4'));

describe.each(['float32', 'float16'] as const)('layout copies in vec4 units (%s)', (dtype) => {
  const make = (shape: number[], offset = 0) => {
    const t = T.tensor(
      iota(sizeOf(shape)).map((v) => v + offset),
      shape,
    );
    return dtype === 'float16' ? t.half() : t;
  };
  const skip = () => dtype === 'float16' && !device.report.features.includes('shader-f16');

  it('permute: vec4 when the innermost axis stays innermost with a multiple of 4 values, scalar otherwise', async () => {
    if (skip()) return;
    for (const [shape, vec] of [
      [[3, 5, 2, 8], true],
      [[3, 5, 2, 6], false],
    ] as const) {
      const x = make([...shape]);
      const r = await copies(() => T.permute(x, [0, 2, 1, 3]));
      expect(r.values).toEqual(permuteRef(iota(sizeOf([...shape])), [...shape], [0, 2, 1, 3]));
      expect(vec ? usesVec4(r.keys) : usesScalar(r.keys), r.keys.join()).toBe(true);
    }
    // The innermost axis moves: a transpose, scalar.
    const x = make([3, 4, 8]);
    const r = await copies(() => T.permute(x, [0, 2, 1]));
    expect(r.values).toEqual(permuteRef(iota(96), [3, 4, 8], [0, 2, 1]));
    expect(usesScalar(r.keys)).toBe(true);
  });

  it('slices and expand: vec4 at offsets and strides in fours, scalar at others', async () => {
    if (skip()) return;
    const x = make([5, 12]);
    const data = iota(60);
    for (const [start, length, vec] of [
      [4, 8, true],
      [2, 8, false],
      [4, 6, false],
    ] as const) {
      const r = await copies(() => T.narrow(x, 1, start, length));
      const want = [...coords([5, length])].map(([i, j]) => data[i! * 12 + start + j!]!);
      expect(r.values).toEqual(want);
      expect(vec ? usesVec4(r.keys) : usesScalar(r.keys), `narrow ${start} ${length}: ${r.keys.join()}`).toBe(true);
    }
    const row = make([1, 8]);
    const r = await copies(() => T.expand(row, [3, 8]));
    expect(r.values).toEqual([...iota(8), ...iota(8), ...iota(8)]);
    expect(usesVec4(r.keys)).toBe(true);
  });

  it('concat: each input in vec4 units where its slab allows', async () => {
    if (skip()) return;
    for (const [shapes, axis, vec] of [
      [
        [
          [2, 3, 8],
          [2, 5, 8],
        ],
        1,
        true,
      ],
      [
        [
          [2, 3, 4],
          [2, 3, 8],
        ],
        2,
        true,
      ],
      [
        [
          [2, 3, 2],
          [2, 3, 6],
        ],
        2,
        false,
      ],
      [
        [
          [2, 3, 5],
          [2, 1, 5],
        ],
        1,
        false,
      ],
    ] as const) {
      const xs = shapes.map((s, i) => make([...s], 100 * i));
      const r = await copies(() => T.concat(xs, axis));
      const want = concatRef(
        shapes.map((s, i) => ({ data: iota(sizeOf([...s])).map((v) => v + 100 * i), shape: [...s] })),
        axis,
      );
      expect(r.values).toEqual(want);
      expect(vec ? usesVec4(r.keys) : usesScalar(r.keys), `concat ${JSON.stringify(shapes)}: ${r.keys.join()}`).toBe(
        true,
      );
    }
  });
});
