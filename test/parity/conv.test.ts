import * as T from '@leffa-webgpu/core';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

const OPS: Record<string, OpAdapter> = {
  conv2d: ([x, w, b], a) => T.conv2d(x!, w!, b, a),
  conv_transpose2d: ([x, w, b], a) => T.convTranspose2d(x!, w!, b, a),
};

replayGoldenGroup('conv', OPS);
