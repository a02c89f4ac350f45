import * as T from '@leffa-webgpu/core';
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
