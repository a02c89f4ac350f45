import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

/** Deterministic, well-spread values (no two equal, none at 0). */
const values = (n: number, seed: number, scale = 1) =>
  Array.from({ length: n }, (_, i) => (Math.sin(i * 2.39 + seed * 1.3) * 0.9 + 0.07 * ((i % 5) - 2)) * scale);
const leaf = (shape: number[], seed: number, scale = 1) => {
  const t = T.tensor(
    values(
      shape.reduce((a, b) => a * b, 1),
      seed,
      scale,
    ),
    shape,
  );
  t.requiresGrad = true;
  return t;
};
const labels = (data: number[], shape: number[]) => T.tensor(new Int32Array(data), shape);

async function expectGradcheck(
  fn: (...xs: T.Tensor[]) => T.Tensor,
  inputs: T.Tensor[],
  options: T.GradcheckOptions = {},
) {
  const r = await T.gradcheck(fn, inputs, options);
  expect(r.ok, `gradcheck failed: ${JSON.stringify(r.worst)} (max error ${r.maxAbsError})`).toBe(true);
}

describe('sorting and indexing gradients', () => {
  it('gather, indexSelect, embedding and sort values scatter their gradients back', async () => {
    await expectGradcheck((x) => T.gather(x, 1, labels([0, 0, 2, 1, 2, 2], [2, 3])), [leaf([2, 3], 1)]);
    await expectGradcheck((x) => T.indexSelect(x, 0, labels([2, 0, 2], [3])), [leaf([3, 2], 2)]);
    await expectGradcheck((w) => T.embedding(labels([1, 1, 3, 0], [2, 2]), w), [leaf([4, 3], 3)]);
    await expectGradcheck((x) => T.sort(x, -1, true).values, [leaf([2, 5], 4)], { eps: 1e-3 });
  });

  it.each(['workgroup', 'fused'] as const)(
    'argsort is stable on ties, both directions, across segments (%s bitonic schedule)',
    async (schedule) => {
      T.setSortSchedule(schedule);
      try {
        // 3 rows of 2500 (padded to 4096: past the 1024 workgroup tile) with only 7 distinct values, NaN among them.
        const n = 2500;
        const data = Array.from({ length: 3 * n }, (_, i) =>
          i % 97 === 5 ? NaN : [0.5, -1, 3, 0, -0, 2.25, -7][(i * 7919) % 7]!,
        );
        const x = T.tensor(data, [3, n]);
        for (const descending of [false, true]) {
          const got = await T.argsort(x, -1, descending).intData();
          for (let r = 0; r < 3; r++) {
            const row = data.slice(r * n, (r + 1) * n);
            // NaN is the largest value (as PyTorch); equal keys keep their order (-0 and 0 are equal).
            const key = (v: number) => (Number.isNaN(v) ? Infinity : v);
            const want = Array.from({ length: n }, (_, i) => i).sort(
              (a, b) => (descending ? key(row[b]!) - key(row[a]!) : key(row[a]!) - key(row[b]!)) || a - b,
            );
            expect(Array.from(got.slice(r * n, (r + 1) * n))).toEqual(want);
          }
        }
      } finally {
        T.setSortSchedule(null);
      }
    },
  );

  it('out-of-range indices give NaN (oneHot) or an error at the next readback (indexSelect), never a silent value', async () => {
    const hot = await T.oneHot(labels([1, -2], [2]), 3).data();
    expect(Array.from(hot.slice(0, 3))).toEqual([0, 1, 0]);
    expect(Array.from(hot.slice(3)).every(Number.isNaN)).toBe(true);
    await expect(T.indexSelect(T.ones([3, 2]), 0, labels([0, 3], [2])).data()).rejects.toThrow(
      /indexSelect: index 3 is out of range/,
    );
  });

  it('checks ranks and dtypes', () => {
    expect(() => T.gather(T.zeros([2, 3]), 1, labels([0, 1], [2]))).toThrow(
      'gather: index [2] must have the rank of input [2, 3] and no larger size outside axis 1',
    );
    expect(() => T.gather(T.zeros([2, 3]), 1, T.zeros([2, 1]))).toThrow(
      'gather: index must be int32, got float32 [2, 1]',
    );
    expect(() => T.indexSelect(T.zeros([2, 3]), 0, labels([0, 1], [1, 2]))).toThrow(
      'indexSelect: index must be 1-D, got [1, 2]',
    );
    expect(() => T.embedding(labels([0], [1]), T.zeros([3]))).toThrow(
      'embedding: weight must be [numEmbeddings, dim], got [3]',
    );
  });
});
