import * as T from '@leffa-webgpu/core';
import { timestepEmbedding } from '@leffa-webgpu/models';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

const OPS: Record<string, OpAdapter> = {
  mse: ([a, b], o) => T.mseLoss(a!, b!, o.reduction),
  l1: ([a, b], o) => T.l1Loss(a!, b!, o.reduction),
  smooth_l1: ([a, b], o) => T.smoothL1Loss(a!, b!, { beta: o.beta }),
  bce_logits: ([x, y, pw]) => T.binaryCrossEntropyWithLogits(x!, y!, pw ? { posWeight: pw } : {}),
  ce: ([x, t, w], o) => T.crossEntropy(x!, t!, { ...o, ...(w ? { weight: w } : {}) }),
  kl: ([a, b], o) => T.klDiv(a!, b!, o.reduction),
  // The embedding takes CPU timesteps (the golden also stores them as its input tensor).
  timestep_embedding: (_, o) =>
    timestepEmbedding(o.timesteps, o.dim, { flipSinToCos: o.flip, downscaleFreqShift: o.shift }),
  one_hot: ([t], o) => T.oneHot(t!, o.classes),
};

replayGoldenGroup('losses', OPS);
