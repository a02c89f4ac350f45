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
