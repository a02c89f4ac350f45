import * as T from '@leffa-webgpu/core';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

const OPS: Record<string, OpAdapter> = {
  interpolate: ([x], a) => T.interpolate(x!, a),
  grid_sample: ([x, g], a) => T.gridSample(x!, g!, a),
  avg_pool2d: ([x], a) => T.avgPool2d(x!, a as T.AvgPool2dOptions),
  adaptive_avg_pool2d: ([x], a) => T.adaptiveAvgPool2d(x!, a.size),
  max_pool2d: ([x], a) => T.maxPool2d(x!, a as T.MaxPool2dOptions),
};

replayGoldenGroup('resample', OPS);
