import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

/** A module with a float32 parameter, a float16 one (where the adapter has shader-f16) and an int32 buffer. */
class Mixed extends T.Module {
  readonly a: T.Tensor;
  readonly h: T.Tensor | null;
  readonly counts: T.Tensor;
  constructor(half: boolean) {
    super();
    const gen = new T.Generator(5);
    this.a = this.addParameter('a', T.randn([33, 7], { generator: gen }));
    this.h = half ? this.addParameter('h', T.cast(T.randn([5, 9], { generator: gen }), 'float16')) : null;
    this.counts = this.addBuffer('counts', T.tensor(Int32Array.from([3, -1, 2 ** 30]), [3], 'int32'));
  }
}

const half = () => T.activeDevice().gpu.features.has('shader-f16');

describe('offloadToHost / reloadFromHost', () => {
  it('frees the device buffers and brings back the same bits; use while offloaded names the tensor', async () => {
    const m = new Mixed(half());
    const before = {
      a: await m.a.data(),
      h: m.h ? await m.h.halfBits() : null,
      counts: await m.counts.intData(),
    };
    const live = T.memoryStats().liveBytes;
    await T.nn.offloadToHost(m);
    expect(T.nn.isOffloaded(m)).toBe(true);
    expect(T.memoryStats().liveBytes).toBeLessThan(live);
    expect(() => T.add(m.a, 1)).toThrow(/Mixed\.a is in host memory; call nn.reloadFromHost/);
    T.nn.reloadFromHost(m);
    expect(T.nn.isOffloaded(m)).toBe(false);
    expect(T.memoryStats().liveBytes).toBe(live);
    expect(await m.a.data()).toEqual(before.a);
    if (m.h) expect(await m.h.halfBits()).toEqual(before.h);
    expect(await m.counts.intData()).toEqual(before.counts);
    m.dispose();
  });

  it('a module changed on the device after a reload keeps its new values; repeated calls change nothing', async () => {
    const m = new Mixed(false);
    await T.nn.offloadToHost(m);
    T.nn.reloadFromHost(m);
    // Changed on the device after the reload: the next offload must keep the new values.
    m.a.assign(T.mul(m.a, 2));
    const doubled = await m.a.data();
    await T.nn.offloadToHost(m);
    T.nn.reloadFromHost(m);
    expect(await m.a.data()).toEqual(doubled);
    // Offloading twice or reloading a module that is on the device changes nothing.
    await T.nn.offloadToHost(m);
    await T.nn.offloadToHost(m);
    T.nn.reloadFromHost(m);
    T.nn.reloadFromHost(m);
    expect(await m.a.data()).toEqual(doubled);
    T.nn.dropHostCopy(m);
    m.dispose();
  });
});
