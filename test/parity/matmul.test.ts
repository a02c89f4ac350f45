import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe } from 'vitest';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

const device = await T.init();

const OPS: Record<string, OpAdapter> = {
  matmul: ([a, b]) => T.matmul(a!, b!),
  linear: ([x, w, b]) => T.linear(x!, w!, b),
  gemm: ([a, b, bias], at) =>
    T.gemm(
      a!,
      b!,
      {
        batch: at.batch,
        M: at.M,
        N: at.N,
        K: at.K,
        broadcastA: at.broadcastA ?? false,
        broadcastB: at.broadcastB ?? false,
      },
      { transA: at.transA, transB: at.transB, bias, biasMode: at.biasMode },
      at.batch === 1 ? [at.M, at.N] : [at.batch, at.M, at.N],
    ),
};

// Every kernel variant this adapter can run, not only the one gemm picks for it.
const variants: T.MatmulVariant[] = ['tiled', 'register', ...(device.hasSubgroups ? (['broadcast'] as const) : [])];
for (const variant of variants) {
  describe(`matmul kernel '${variant}'`, () => {
    beforeAll(() => T.setMatmulVariant(variant));
    afterAll(() => T.setMatmulVariant(null));
    replayGoldenGroup('matmul', OPS);
  });
}
