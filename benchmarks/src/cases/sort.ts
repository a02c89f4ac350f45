import * as T from '@leffa-webgpu/core';
import { type BenchCase, randomInput } from '../case.js';

// The Lovasz-softmax sort of SCHP training at 64x48, batch 8: one row per class, every pixel's error.
const ROWS = 20;
const COLS = 8 * 64 * 48;

/**
 * Descending sort along rows. Ours uses this adapter's bitonic schedule (three stages per pass in registers on
 * CPU adapters); the baseline is the workgroup-memory schedule GPUs get; tfjs sorts with topk(k = n).
 */
export const sortCase: BenchCase = {
  name: `sort ${ROWS}x${COLS} descending`,
  profile: 'ci',
  inputs: () => [randomInput([ROWS, COLS], 11)],
  bytes: 2 * ROWS * COLS * 4,
  ours: ([x]) => ({ run: () => T.sort(x!, -1, true).values }),
  baseline: {
    label: 'workgroup-memory bitonic schedule',
    impl: ([x]) => ({
      run: () => {
        T.setSortSchedule('workgroup');
        try {
          return T.sort(x!, -1, true).values;
        } finally {
          T.setSortSchedule(null);
        }
      },
    }),
  },
  tfjs: (tf, [x]) => ({ run: () => tf.topk(x!, COLS, true).values }),
  torch: { run: 'return torch.sort(x0, -1, descending=True).values' },
};
