import * as T from '@leffa-webgpu/core';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

// NaN and infinity through the ops PyTorch propagates them in, and the accuracy of long float32 reductions
// (goldens from test/golden/cases_reliability.py). The long inputs are built here from the same formula as
// on the PyTorch side: a constant, or a small golden pattern tiled with repeat.
await T.init();

const axes = (a: Record<string, any>) => (a.axes ?? undefined) as number[] | undefined;
const tiled = (x: T.Tensor, a: Record<string, any>) => T.repeat(x, a.times);

/** The first and last 2048 values of a flattened tensor. */
const edges = (y: T.Tensor) => {
  const flat = T.reshape(y, [y.size]);
  return T.concat([T.narrow(flat, 0, 0, 2048), T.narrow(flat, 0, y.size - 2048, 2048)], 0);
};

const OPS: Record<string, OpAdapter> = {
  relu: ([x]) => T.relu(x!),
  glu: ([x], a) => T.glu(x!, a.axis),
  geglu: ([x], a) => T.geglu(x!, a.axis),
  maximum: ([a, b]) => T.maximum(a!, b!),
  minimum: ([a, b]) => T.minimum(a!, b!),
  maximum_scalar: ([x], a) => T.maximum(x!, a.scalar),
  clamp: ([x], a) => T.clamp(x!, a.min ?? undefined, a.max ?? undefined),
  max: ([x], a) => T.max(x!, axes(a), a.keepdim),
  min: ([x], a) => T.min(x!, axes(a), a.keepdim),
  argmax: ([x], a) => T.argmax(x!, a.axis),
  argmin: ([x], a) => T.argmin(x!, a.axis),
  max_pool2d: ([x], a) => T.maxPool2d(x!, a as T.MaxPool2dOptions),
  sort: ([x], a) => {
    const { values, indices } = T.sort(x!, a.axis, a.descending);
    return [values, indices];
  },
  logsumexp: ([x], a) => T.logsumexp(x!, axes(a), a.keepdim),
  sum: ([x], a) => T.sum(x!, axes(a), a.keepdim),
  sum_full: (_, a) => T.sum(T.full(a.shape, a.value), axes(a)),
  sum_tiled: ([x], a) => T.sum(tiled(x!, a), axes(a)),
  mean_tiled: ([x], a) => T.mean(tiled(x!, a), axes(a)),
  group_norm_tiled: ([x], a) => edges(T.groupNorm(tiled(x!, a), a.groups)),
  layer_norm_tiled: ([x], a) => {
    const t = tiled(x!, a);
    return edges(T.layerNorm(t, [t.shape[1]!]));
  },
  var_tiled: ([x], a) => T.variance(tiled(x!, a), axes(a)),
};

replayGoldenGroup('reliability', OPS);
