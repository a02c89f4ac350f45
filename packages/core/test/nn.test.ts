import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

const { Linear, Sequential, ModuleList, Dropout, Identity } = T.nn;

beforeAll(async () => {
  await T.init();
});

class Block extends T.Module {
  readonly proj: InstanceType<typeof Linear>;
  readonly layers: InstanceType<typeof ModuleList>;
  readonly scale: T.Tensor;
  constructor() {
    super();
    this.proj = this.addModule('proj', new Linear(3, 4));
    this.layers = this.addModule('layers', new ModuleList([new Linear(4, 4), new Linear(4, 2, { bias: false })]));
    this.scale = this.addBuffer('scale', T.ones([2]));
  }
}

describe('nn', () => {
  it('names parameters and buffers with dotted paths', () => {
    const m = new Block();
    expect([...m.stateDict().keys()]).toEqual([
      'proj.weight', 'proj.bias', 'layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'scale',
    ]);
    expect(m.numParameters()).toBe(12 + 4 + 16 + 4 + 8);
    expect(m.parameters().every((p) => p.requiresGrad)).toBe(true);
  });

  it('loads state dicts and reports every problem by name', async () => {
    const m = new Block();
    const dict = new Map([...m.stateDict()].map(([k, v]) => [k, T.fullLike(v, 0.5)]));
    const report = m.loadStateDict(dict);
    expect(report).toEqual({ missing: [], unexpected: [], mismatched: [] });
    expect(Array.from(await m.proj.weight.data())).toEqual(new Array(12).fill(0.5));

    dict.delete('layers.0.bias');
    dict.set('extra.weight', T.zeros([1]));
    dict.set('proj.weight', T.zeros([4, 5]));
    expect(() => m.loadStateDict(dict)).toThrow(
      /shape mismatch for proj.weight: expected \[4, 3\], got \[4, 5\][\s\S]*missing: layers.0.bias[\s\S]*unexpected: extra.weight/,
    );
    const loose = m.loadStateDict(dict, { strict: false });
    expect(loose.missing).toEqual(['layers.0.bias']);
  });

  it('withoutInit defers weight buffers until first use; loading hands them the loaded storage', async () => {
    const before = T.memoryStats().liveBytes;
    // 4M + 16M floats of weights: neither is allocated by the build, nor by a shape check.
    const big = T.nn.withoutInit(() => new ModuleList([new Linear(2048, 2048), new T.nn.Conv2d(1024, 1024, 4)]));
    expect(big.stateDict().get('0.weight')!.shape).toEqual([2048, 2048]);
    expect(big.checkStateDict(new Map([['0.weight', [2048, 2048]], ['0.bias', [2048]], ['1.weight', [1024, 1024, 4, 4]], ['1.bias', [1024]]])))
      .toEqual({ missing: [], unexpected: [], mismatched: [] });
    expect(T.memoryStats().liveBytes - before).toBe(0);
    big.dispose();
    expect(T.memoryStats().liveBytes).toBe(before);

    // A loaded parameter takes the given storage (no second buffer); an unloaded one is allocated when used.
    const m = T.nn.withoutInit(() => new Linear(3, 2));
    const w = T.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const loaded = T.memoryStats().liveBytes;
    m.loadStateDict({ weight: w }, { strict: false });
    expect(T.memoryStats().liveBytes).toBe(loaded);
    expect(Array.from(await m.weight.data())).toEqual([1, 2, 3, 4, 5, 6]);
    m.bias!.assign(T.tensor([0.5, -0.5]));
    expect(Array.from(await m.forward(T.tensor([1, 0, 1], [1, 3])).data())).toEqual([4.5, 9.5]);
    const fresh = T.nn.withoutInit(() => new Linear(3, 2));
    const y = fresh.forward(T.ones([1, 3])); // runs on the (undefined) contents: buffers are taken on use
    expect(y.shape).toEqual([1, 2]);
    expect(T.memoryStats().liveBytes).toBeGreaterThan(loaded);
    T.dispose([m.weight, m.bias!, fresh.weight, fresh.bias!, y]);
  });

  it('trains a Sequential and switches dropout off in eval', async () => {
    const net = new Sequential(new Linear(2, 16, { generator: new T.Generator(1) }), new Identity(), new Dropout(0.5, new T.Generator(2)));
    const x = T.ones([8, 2]);
    net.train();
    const a = await net.forward(x).data();
    expect(a.some((v) => v === 0)).toBe(true);
    net.eval();
    const b = await net.forward(x).data();
    const c = await net.forward(x).data();
    expect(Array.from(b)).toEqual(Array.from(c));
  });
});
