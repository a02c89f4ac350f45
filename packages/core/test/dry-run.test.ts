/**
 * Device.dryRun: ops take and release pool buffers exactly as a real run does, but nothing is executed or
 * written, buffers the pool would create are accounted only, and they cannot leak into later real work.
 */
import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

/** Some work with intermediates of several size classes, freed as it goes; returns a 1-element result. */
function work(x: T.Tensor, w: T.Tensor): T.Tensor {
  return T.tidy(() => {
    let h = x;
    for (let i = 0; i < 3; i++) h = T.relu(T.conv2d(h, w, undefined, { padding: 1 }));
    const pooled = T.interpolate(h, { size: [7, 5], mode: 'bilinear' });
    return T.sum(T.softmax(T.reshape(pooled, [2, -1]), 1));
  });
}

describe('dryRun', () => {
  it('accounts the same live and held peaks as the real run, executes nothing, reads its own tensors as zeros', async () => {
    const device = T.activeDevice();
    const gen = new T.Generator(5);
    const x = T.keep(T.randn([2, 6, 19, 13], { generator: gen }));
    const w = T.keep(T.randn([6, 6, 3, 3], { generator: gen, std: 0.2 }));
    const measure = async (dry: boolean) => {
      // From the same pool state: nothing cached.
      await T.sync();
      device.pool.emptyCache();
      device.pool.resetPeak();
      const submits = device.counters.submits;
      const dispatches = device.counters.dispatches;
      const body = async () => {
        const y = work(x, w);
        const values = Array.from(await y.data());
        const stats = T.memoryStats();
        y.dispose();
        return { values, stats, after: T.memoryStats() };
      };
      const out = dry ? await T.dryRun(body) : await body();
      return {
        ...out,
        submits: device.counters.submits - submits,
        dispatches: device.counters.dispatches - dispatches,
      };
    };
    const real = await measure(false);
    const dry = await measure(true);
    expect(real.stats.peakLiveBytes).toBeGreaterThan(real.stats.liveBytes);
    expect(dry.stats).toEqual(real.stats);
    expect(dry.after).toEqual(real.after);
    expect(dry.dispatches).toBe(real.dispatches);
    // Nothing was submitted; the result, made inside, reads as zeros (the real one is the softmax rows' sum, 2).
    expect(dry.submits).toBe(0);
    expect(real.submits).toBeGreaterThan(0);
    expect(real.values[0]).toBeCloseTo(2, 4);
    expect(dry.values).toEqual([0]);
    // Tensors from before the dry run read as they are.
    const before = await x.data();
    expect(await T.dryRun(() => x.data())).toEqual(before);
    T.dispose([x, w]);
  });

  it('leaves nothing without device memory in the pool; a tensor made inside cannot be used after', async () => {
    const device = T.activeDevice();
    await T.sync();
    device.pool.emptyCache();
    const pooled = T.memoryStats().pooledBytes;
    const kept = await T.dryRun(() => {
      T.tidy(() => T.add(T.ones([1000]), 1));
      return T.mul(T.ones([300]), 2);
    });
    // Its released buffers were dropped from the cache; the live one is still counted until disposed.
    expect(T.memoryStats().pooledBytes).toBe(pooled);
    expect(() => T.add(kept, 1)).toThrow(/created in a dry run.*cannot be used after/);
    await expect(kept.data()).rejects.toThrow(/created in a dry run/);
    // Disposed, it stops counting as live and is not cached (nothing to hand out).
    const { liveBytes, pooledBytes } = T.memoryStats();
    kept.dispose();
    expect(T.memoryStats().liveBytes).toBe(liveBytes - T.sizeClass(1200));
    expect(T.memoryStats().pooledBytes).toBe(pooledBytes);
    // Real work goes on as before.
    expect(Array.from(await T.add(T.ones([3]), 1).data())).toEqual([2, 2, 2]);
  });
});
