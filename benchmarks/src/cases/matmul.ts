import * as T from '@leffa-webgpu/core';
import { type BenchCase, type Profile, randomInput } from '../case.js';

/** fp32 C = A @ B for [batch, M, K] @ [batch, K, N] (batch 1 drops the leading dim). */
function matmulCase(name: string, profile: Profile, batch: number, M: number, K: number, N: number): BenchCase {
  const lead = batch > 1 ? [batch] : [];
  return {
    name,
    profile,
    inputs: () => [randomInput([...lead, M, K], 1), randomInput([...lead, K, N], 2)],
    flops: 2 * batch * M * N * K,
    ours: ([a, b]) => ({ run: () => T.matmul(a!, b!) }),
    tfjs: (tf, [a, b]) => ({ run: () => tf.matMul(a!, b!) }),
    torch: { run: 'return torch.matmul(x0, x1)' },
  };
}

export const matmulCases: BenchCase[] = [
  matmulCase('matmul 256^3', 'ci', 1, 256, 256, 256),
  matmulCase('matmul 512^3', 'ci', 1, 512, 512, 512),
  matmulCase('matmul 1024^3', 'ci', 1, 1024, 1024, 1024),
  matmulCase('matmul 2048^3', 'full', 1, 2048, 2048, 2048),
  matmulCase('matmul 8x(1024x64)@(64x1024)', 'ci', 8, 1024, 64, 1024),
  matmulCase('matmul 4096x320@320x320', 'ci', 1, 4096, 320, 320),
];
