import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { flowField, keyGridCoordinates } from '../src/diffusion/flow-field.js';

beforeAll(async () => {
  await T.init();
});

const leaf = (shape: number[], seed: number) => {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = T.tensor(
    Array.from({ length: n }, (_, i) => Math.sin(i * 2.39 + seed * 1.3) * 0.9 + 0.07 * ((i % 5) - 2)),
    shape,
  );
  t.requiresGrad = true;
  return t;
};

describe('flowField', () => {
  it('gradchecks in q and k on an odd key grid', async () => {
    const r = await T.gradcheck(
      (q, k) => flowField(q, k, { height: 2, width: 3 }, { tau: 2 }),
      [leaf([1, 2, 4, 4], 28), leaf([1, 2, 6, 4], 29)],
    );
    expect(r.ok, `gradcheck failed: ${JSON.stringify(r.worst)} (max error ${r.maxAbsError})`).toBe(true);
  });

  it('places the key grid from (-1, -1) to (1, 1), row-major', async () => {
    expect(Array.from(await keyGridCoordinates(2, 3).data())).toEqual([-1, -1, 0, -1, 1, -1, -1, 1, 0, 1, 1, 1]);
  });

  it('names a key grid that does not match the keys', () => {
    expect(() => flowField(T.zeros([1, 1, 3, 4]), T.zeros([1, 1, 5, 4]), { height: 2, width: 3 })).toThrow(
      /key grid 2x3 has 6 positions/,
    );
  });
});
