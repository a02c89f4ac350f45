import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

const OPS: Record<string, OpAdapter> = {
  group_norm: ([x, w, b], a) => T.groupNorm(x!, a.groups, w, b, a.eps),
  group_norm_silu: ([x, w, b], a) => T.groupNormSilu(x!, a.groups, w, b, a.eps),
  layer_norm: ([x, w, b], a) => T.layerNorm(x!, a.shape, w, b, a.eps ?? 1e-5),
  batch_norm: ([x, w, b, rm, rv], a) => {
    const runningMean = rm!.detach();
    const runningVar = rv!.detach();
    const options = { training: a.training, momentum: a.momentum, numBatchesTracked: 1 };
    const y = a.abn
      ? T.activatedBatchNorm(x!, runningMean, runningVar, w!, b!, options)
      : T.batchNorm(x!, runningMean, runningVar, w!, b!, options);
    return [y, runningMean, runningVar];
  },
};

replayGoldenGroup('norms', OPS);

// Rows owned by workgroups of 8 invocations (CPU adapters' choice) and of 64 (every other adapter's).
for (const lanes of [8, 64] as const) {
  describe(`norm rows in workgroups of ${lanes}`, () => {
    beforeAll(() => T.setRowLanes(lanes));
    afterAll(() => T.setRowLanes(null));
    replayGoldenGroup('norms', OPS);
  });
}
it('setRowLanes names what it takes', () => {
  expect(() => T.setRowLanes(16 as 8)).toThrow(/setRowLanes: expected 8, 64 or null, got 16/);
});
