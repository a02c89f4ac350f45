import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

describe('memory', () => {
  it('200 training steps of a small MLP keep live memory flat', async () => {
    const gen = new T.Generator(7);
    const w1 = T.keep(T.randn([8, 32], { generator: gen, std: 0.3 }));
    const b1 = T.keep(T.zeros([32]));
    const w2 = T.keep(T.randn([32, 1], { generator: gen, std: 0.3 }));
    const params = [w1, w2, b1];
    for (const p of params) p.requiresGrad = true;
    // Built in a scope so that no unreferenced intermediate is left for the garbage collector to free mid-test.
    const { x, y } = T.tidy(() => {
      const x = T.randn([64, 8], { generator: gen });
      return { x, y: T.sum(T.sin(x), 1, true) };
    });

    const live: number[] = [];
    const losses: number[] = [];
    for (let step = 0; step < 200; step++) {
      const loss = T.tidy(() => {
        const h = T.relu(T.add(T.matmul(x, w1), b1));
        const l = T.mean(T.square(T.sub(T.matmul(h, w2), y)));
        l.backward();
        for (const p of params) {
          p.assign(T.sub(p, T.mul(p.grad!, 0.05)));
          p.grad!.dispose();
          p.grad = null;
        }
        return l.detach();
      });
      if (step % 50 === 0 || step === 199) losses.push(await loss.item());
      loss.dispose();
      await T.throttle();
      live.push(T.memoryStats().liveBytes);
    }
    // After the first step the pool has every size class it needs: live bytes must not grow at all.
    expect(new Set(live.slice(1)).size).toBe(1);
    expect(T.memoryStats().liveBuffers).toBeLessThan(20);
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]! * 0.5);
  });

  it('tidy disposes intermediates and keeps results', () => {
    const before = T.memoryStats().liveBuffers;
    const kept = T.tidy(() => {
      const a = T.ones([4]);
      const b = T.add(a, a);
      return T.mul(b, 3);
    });
    expect(T.memoryStats().liveBuffers).toBe(before + 1);
    kept.dispose();
    expect(T.memoryStats().liveBuffers).toBe(before);
  });

  it('tidy rejects async functions and cleans up', () => {
    const before = T.memoryStats().liveBuffers;
    expect(() => T.tidy(() => Promise.resolve(T.ones([2])) as never)).toThrow(/synchronous/);
    expect(T.memoryStats().liveBuffers).toBe(before);
  });

  it('views share storage until the last one is disposed', async () => {
    const before = T.memoryStats().liveBuffers;
    const a = T.tensor([1, 2, 3, 4, 5, 6]);
    const v = a.reshape([2, 3]);
    a.dispose();
    expect(T.memoryStats().liveBuffers).toBe(before + 1);
    expect(Array.from(await v.data())).toEqual([1, 2, 3, 4, 5, 6]);
    v.dispose();
    expect(T.memoryStats().liveBuffers).toBe(before);
  });

  it('buffers are recycled by size class', () => {
    expect(T.sizeClass(1)).toBe(256);
    expect(T.sizeClass(1000)).toBe(1024);
    expect(T.sizeClass(1025)).toBe(1280);
    expect(T.sizeClass(2 ** 20 + 1)).toBe(2 ** 20 + 2 ** 16);
    expect(T.sizeClass(2 ** 21 - 100)).toBe(2 ** 21);
    const pooled = T.memoryStats().pooledBuffers;
    T.ones([300]).dispose();
    const again = T.memoryStats().pooledBuffers;
    T.ones([290]).dispose();
    expect(T.memoryStats().pooledBuffers).toBe(again);
    expect(again).toBeGreaterThanOrEqual(pooled);
  });
});
