import { beforeAll, describe, expect, it } from 'vitest';
import * as T from '@leffa-webgpu/core';

beforeAll(async () => {
  await T.init();
});

describe('basics', () => {
  it('creates, computes and reads back', async () => {
    const a = T.tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const b = T.tensor([10, 20, 30]);
    const c = a.add(b).mul(2);
    expect(Array.from(await c.data())).toEqual([22, 44, 66, 28, 50, 72]);
    expect(await T.sum(a).item()).toBe(21);
    expect(Array.from(await T.sum(a, 0).data())).toEqual([5, 7, 9]);
    expect(Array.from(await T.sum(a, 1).data())).toEqual([6, 15]);
    expect(Array.from(await T.matmul(a, T.transpose(a)).data())).toEqual([14, 32, 32, 77]);
  });

  it('backward through a small graph', async () => {
    const x = T.tensor([1, 2, 3]);
    x.requiresGrad = true;
    const y = x.mul(x).sum();
    y.backward();
    expect(Array.from(await x.grad!.data())).toEqual([2, 4, 6]);
  });
});
