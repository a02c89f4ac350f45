import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { lovaszSoftmax } from '../src/schp/lovasz.js';

beforeAll(async () => {
  await T.init();
});

describe('lovaszSoftmax', () => {
  it('gradchecks against the probabilities', async () => {
    // Well-spread logits (no ties); small steps, since larger ones would reorder the sorted errors, where
    // the loss is only piecewise linear.
    const logits = Array.from({ length: 24 }, (_, i) => (Math.sin(i * 2.39 + 1.3) * 0.9 + 0.07 * ((i % 5) - 2)) * 3);
    const probas = T.noGrad(() => T.softmax(T.tensor(logits, [2, 3, 2, 2]), 1)).detach();
    probas.requiresGrad = true;
    const lab = T.tensor(new Int32Array([0, 2, 255, 0, 1, 0, 0, 255]), [2, 2, 2]);
    for (const classes of ['present', 'all'] as const) {
      const r = await T.gradcheck((p) => lovaszSoftmax(p, lab, { classes }), [probas], { eps: 1e-4, atol: 2e-3 });
      expect(r.ok, `gradcheck (${classes}) failed: ${JSON.stringify(r.worst)} (max error ${r.maxAbsError})`).toBe(true);
    }
  });

  it('names the shapes it cannot pair', () => {
    const probas = T.zeros([1, 3, 2, 2]);
    expect(() => lovaszSoftmax(probas, T.tensor(new Int32Array(6), [1, 2, 3]))).toThrow(
      'lovaszSoftmax: probas [1, 3, 2, 2] and labels [1, 2, 3] do not match',
    );
  });
});
