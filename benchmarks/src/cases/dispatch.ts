import * as T from '@leffa-webgpu/core';
import { type BenchCase, randomInput } from '../case.js';

const OPS = 256;
const SIZE = 256;

/**
 * Per-dispatch overhead: a chain of tiny adds, recorded into one submit (how our device batches work) or
 * submitted one by one. The peer does the same (tfjs also batches unless told to submit).
 */
function dispatchCase(perOpSubmit: boolean): BenchCase {
  return {
    name: `dispatch ${OPS} tiny adds, ${perOpSubmit ? `${OPS} submits` : '1 submit'}`,
    profile: 'ci',
    inputs: () => [randomInput([SIZE], 4)],
    opsPerRun: OPS,
    ours: ([x], device) => ({
      run: () => {
        let y = x!;
        for (let i = 0; i < OPS; i++) {
          y = T.add(y, 1);
          if (perOpSubmit) device.flush();
        }
        return y;
      },
    }),
    tfjs: (tf, [x], submit) => ({
      run: () => {
        let y = x!;
        for (let i = 0; i < OPS; i++) {
          y = tf.add(y, 1);
          if (perOpSubmit) submit();
        }
        return y;
      },
    }),
    torch: { run: `y = x0\nfor _ in range(${OPS}):\n    y = y + 1\nreturn y` },
  };
}

export const dispatchCases: BenchCase[] = [dispatchCase(false), dispatchCase(true)];
