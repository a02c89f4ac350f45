import * as T from '@leffa-webgpu/core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

let device: T.Device;
beforeAll(async () => {
  device = await T.init();
});
afterEach(() => T.setMatmulVariant(null));

/** Forward and input gradient of `op` along the last axis of a seeded [rows, cols] input with a weighted sum. */
async function run(variant: T.MatmulVariant, op: typeof T.softmax, rows: number, cols: number) {
  T.setMatmulVariant(variant);
  const values = Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.731) * 6);
  values[3] = -Infinity; // a masked score
  const x = T.tensor(values, [rows, cols]);
  x.requiresGrad = true;
  const y = op(x, -1);
  const w = T.tensor(
    Array.from({ length: rows * cols }, (_, i) => Math.cos(i * 0.37)),
    [rows, cols],
  );
  T.sum(T.mul(y, w)).backward();
  const out = [await y.data(), await x.grad!.data()];
  T.dispose([x, y, w]);
  return out;
}

describe('softmax rows on CPU adapters', () => {
  it.runIf(() => device.hasSubgroups)(
    'reduce with subgroups as the barrier kernel does (long and odd rows)',
    async () => {
      for (const op of [T.softmax, T.logSoftmax])
        for (const [rows, cols] of [
          [5, 77],
          [3, 516],
          [9, 1536],
        ] as const) {
          const [ySub, gSub] = await run('broadcast', op, rows, cols);
          const [yRow, gRow] = await run('register', op, rows, cols);
          for (const [a, b, what] of [
            [ySub!, yRow!, 'forward'],
            [gSub!, gRow!, 'gradient'],
          ] as const) {
            const err = a.reduce((m, v, i) => (Object.is(v, b[i]) ? m : Math.max(m, Math.abs(v - b[i]!))), 0);
            expect(err, `${op === T.softmax ? 'softmax' : 'logSoftmax'} ${rows}x${cols} ${what}`).toBeLessThan(1e-5);
          }
        }
      // The two variants did run different kernels.
      if (device.report.features.includes('timestamp-query')) {
        const keys = async (variant: T.MatmulVariant) =>
          [...(await device.profile(() => run(variant, T.softmax, 3, 516).then(() => undefined))).keys()].filter((k) =>
            k.startsWith('softmax:'),
          );
        const fast = await keys('broadcast');
        expect(fast.length).toBeGreaterThan(0);
        expect(fast.every((k) => k.endsWith(':subgroup'))).toBe(true);
        expect((await keys('register')).some((k) => k.endsWith(':subgroup'))).toBe(false);
      }
    },
  );
});
