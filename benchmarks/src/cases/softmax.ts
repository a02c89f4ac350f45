import * as T from '@leffa-webgpu/core';
import { type BenchCase, randomInput } from '../case.js';

const ROWS = 4096;
const COLS = 1024;

/** Row softmax over the last axis of an attention-score-sized matrix: memory bound. */
export const softmaxCase: BenchCase = {
  name: `softmax ${ROWS}x${COLS}`,
  profile: 'ci',
  inputs: () => [randomInput([ROWS, COLS], 3, 4)],
  bytes: 2 * ROWS * COLS * 4,
  ours: ([x]) => ({ run: () => T.softmax(x!, -1) }),
  tfjs: (tf, [x]) => ({ run: () => tf.softmax(x!) }),
  torch: { run: 'return torch.softmax(x0, -1)' },
};
