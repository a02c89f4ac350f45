import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

let device: T.Device;
beforeAll(async () => {
  device = await T.init();
});

describe('device', () => {
  it('reports the adapter, limits and features', () => {
    const r = device.report;
    expect(r.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    expect(r.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(Array.isArray(r.features)).toBe(true);
    expect(typeof r.isCpu).toBe('boolean');
  });

  it('batches dispatches into one submit until a readback', async () => {
    await device.sync();
    const before = { ...device.counters };
    let x = T.ones([1000]);
    for (let i = 0; i < 50; i++) x = T.add(x, 1);
    expect(device.counters.submits).toBe(before.submits);
    expect(device.counters.dispatches - before.dispatches).toBe(51);
    // Two reads in the same tick share one submit.
    const [a, b] = await Promise.all([x.data(), T.sum(x).data()]);
    expect(device.counters.submits).toBe(before.submits + 1);
    expect(a[999]).toBe(51);
    expect(b[0]).toBe(51000);
  });

  it('reuses the bind group of a kernel on the same buffers, and drops them when the pool destroys buffers', async () => {
    const step = () =>
      T.tidy(() => {
        const x = T.ones([64, 5]);
        return T.keep(T.sum(T.mul(T.add(x, 2), x), 1));
      });
    // Warm-up: the first run creates its buffers, the second starts from them as the later ones will.
    for (let i = 0; i < 2; i++) {
      const warm = step();
      await warm.data();
      warm.dispose();
    }
    // The same shapes again: the pool hands back the same buffers, so no bind group is made, only uniforms differ.
    const before = device.counters.bindGroupsCreated;
    for (let i = 0; i < 2; i++) {
      const again = step();
      expect(Array.from(await again.data())).toEqual(new Array(64).fill(15));
      again.dispose();
    }
    expect(device.counters.bindGroupsCreated).toBe(before);
    // Different scalars reach the kernels through the uniforms, not the cached groups.
    const scaled = T.tidy(() => T.keep(T.mul(T.ones([64, 5]), 3)));
    expect((await scaled.data())[0]).toBe(3);
    scaled.dispose();
    // After emptyCache destroyed the pooled buffers, new buffers get new bind groups.
    device.pool.emptyCache();
    const third = step();
    expect(Array.from(await third.data())).toEqual(new Array(64).fill(15));
    third.dispose();
    expect(device.counters.bindGroupsCreated).toBeGreaterThan(before);
  });

  it('binds the same buffers step after step whatever order the last step released them in', async () => {
    // Four same-size tensors released in an order that changes every step: a pool handing back the
    // last-released buffer first would give each op other buffers (and new bind groups) every step.
    const step = (i: number) => {
      const one = T.ones([48, 7]);
      const a = T.add(one, 1);
      const b = T.mul(a, a);
      const c = T.sub(b, a);
      const out = T.sum(c);
      const order = [one, a, b, c];
      for (let k = 0; k < 4; k++) order[(k + i) % 4]!.dispose();
      return out;
    };
    for (let i = 0; i < 2; i++) {
      const warm = step(i);
      await warm.data();
      warm.dispose();
    }
    const before = device.counters.bindGroupsCreated;
    for (let i = 2; i < 6; i++) {
      const out = step(i);
      expect((await out.data())[0]).toBe(48 * 7 * 2);
      out.dispose();
    }
    expect(device.counters.bindGroupsCreated).toBe(before);
  });

  it('compiles each kernel once', () => {
    const before = device.counters.pipelinesCompiled;
    T.exp(T.ones([3]));
    const after = device.counters.pipelinesCompiled;
    T.exp(T.ones([7]));
    expect(device.counters.pipelinesCompiled).toBe(after);
    expect(after).toBeGreaterThanOrEqual(before);
  });

  it('writes to a buffer still used by pending work only after that work', async () => {
    const a = T.tensor([1, 2, 3]);
    const b = T.mul(a, 10);
    // Overwriting a's storage must not change b, which was recorded (not yet submitted) before the write.
    device.write(a.storage.entry, new Float32Array([7, 7, 7]));
    expect(Array.from(await b.data())).toEqual([10, 20, 30]);
    expect(Array.from(await a.data())).toEqual([7, 7, 7]);
  });

  it('draws reproducible random numbers from seeded generators', async () => {
    const a = await T.randn([1001], { generator: new T.Generator(42) }).data();
    const b = await T.randn([1001], { generator: new T.Generator(42) }).data();
    const c = await T.randn([1001], { generator: new T.Generator(43) }).data();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.1);
    expect(Math.abs(variance - 1)).toBeLessThan(0.1);
    const u = await T.rand([4000], { low: 2, high: 3 }).data();
    expect(Math.min(...u)).toBeGreaterThanOrEqual(2);
    expect(Math.max(...u)).toBeLessThan(3);
    // A generator continues its stream: two draws differ.
    const g = new T.Generator(5);
    expect(Array.from(await T.rand([8], { generator: g }).data())).not.toEqual(
      Array.from(await T.rand([8], { generator: g }).data()),
    );
  });

  it('creates tensors of every kind', async () => {
    expect(Array.from(await T.arange(5).data())).toEqual([0, 1, 2, 3, 4]);
    expect(Array.from(await T.arange(1, 2, 0.25).data())).toEqual([1, 1.25, 1.5, 1.75]);
    expect(Array.from(await T.full([2], -3).data())).toEqual([-3, -3]);
    expect(Array.from(await T.eye(2).data())).toEqual([1, 0, 0, 1]);
    expect(
      await T.tensor([
        [1, 2],
        [3, 4],
      ]).array(),
    ).toEqual([
      [1, 2],
      [3, 4],
    ]);
    const idx = T.argmax(
      T.tensor([
        [1, 5, 2],
        [7, 0, 7],
      ]),
      1,
    );
    expect(idx.dtype).toBe('int32');
    expect(Array.from(await idx.data())).toEqual([1, 0]);
  });
});
