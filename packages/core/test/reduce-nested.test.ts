import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

/*
 * Sums over the axes on both sides of one kept block with short inner runs (a bias gradient over [N, C, H, W]
 * on small maps) take one dispatch that nests the two column passes: the same values, bit for bit, as summing
 * the trailing axes and then the leading ones.
 */

let device: T.Device;
beforeAll(async () => {
  device = await T.init();
});

const values = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + seed) * 3 + 0.01 * (i % 13));

/** Float64 sums of x [A, O, I] over A and I. */
function reference(data: number[], A: number, O: number, I: number): number[] {
  const out = new Array<number>(O).fill(0);
  for (let a = 0; a < A; a++)
    for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) out[o]! += data[(a * O + o) * I + i]!;
  return out;
}

describe('nested sums over [A, O, I]', () => {
  it.each([
    [
      [4, 32, 7, 5],
      [0, 2, 3],
    ],
    [
      [3, 5, 2],
      [0, 2],
    ],
    [
      [2, 3, 4, 63],
      [0, 3],
    ],
    [
      [150, 1, 2, 3],
      [0, 3],
    ],
    [
      [40, 3, 50],
      [0, 2],
    ],
  ])('%j over %j: one dispatch, equal to the two passes and to float64', async (shape, axes) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = values(n, shape.length);
    const x = T.tensor(data, shape);
    let nested: T.Tensor | undefined;
    const times = await device.profile(() => {
      nested = T.sum(x, axes);
    });
    expect([...times.keys()]).toEqual(['reduce:sum:nested']);
    const kept = shape.findIndex((_, d) => !axes.includes(d) && shape[d] !== 1);
    const trailing = axes.filter((a) => a > kept);
    const twoPass = T.sum(
      T.sum(x, trailing, true),
      axes.filter((a) => a < kept),
    );
    const got = Array.from(await nested!.data());
    expect(got).toEqual(Array.from(await twoPass.reshape(nested!.shape).data()));
    const A = shape.slice(0, kept).reduce((a, b) => a * b, 1);
    const lastKept = Math.min(...trailing) - 1;
    const tail = shape.slice(lastKept + 1).reduce((a, b) => a * b, 1);
    reference(data, A, n / (A * tail), tail).forEach((v, o) => expect(got[o]).toBeCloseTo(v, 3));
  });

  it('NaN and infinities propagate as in a plain sum', async () => {
    const data = values(2 * 3 * 4, 1);
    data[5] = Number.NaN; // channel 1
    data[13] = Number.POSITIVE_INFINITY; // channel 0 of image 1
    data[20] = Number.NEGATIVE_INFINITY; // channel 2 of image 1
    data[22] = Number.NEGATIVE_INFINITY;
    const got = Array.from(await T.sum(T.tensor(data, [2, 3, 4]), [0, 2]).data());
    expect(Number.isNaN(got[1])).toBe(true);
    expect(got[0]).toBe(Number.POSITIVE_INFINITY);
    expect(got[2]).toBe(Number.NEGATIVE_INFINITY);
  });

  it('the bias gradient of a convolution on a small map takes it', async () => {
    const x = T.tensor(values(2 * 3 * 5 * 4, 2), [2, 3, 5, 4]);
    const w = T.tensor(values(4 * 3 * 9, 3), [4, 3, 3, 3]);
    const b = T.tensor([0.1, -0.2, 0.3, 0.4], [4]);
    b.requiresGrad = true;
    const g = T.tensor(values(2 * 4 * 5 * 4, 4), [2, 4, 5, 4]);
    const times = await device.profile(() => {
      T.conv2d(x, w, b, { padding: 1 }).backward(g);
    });
    expect(times.get('reduce:sum:nested')?.count).toBe(1);
    const want = reference(values(2 * 4 * 5 * 4, 4), 2, 4, 20);
    Array.from(await b.grad!.data()).forEach((v, o) => expect(v).toBeCloseTo(want[o]!, 4));
  });
});
