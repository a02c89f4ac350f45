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
      'proj.weight',
      'proj.bias',
      'layers.0.weight',
      'layers.0.bias',
      'layers.1.weight',
      'scale',
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
    expect(
      big.checkStateDict(
        new Map([
          ['0.weight', [2048, 2048]],
          ['0.bias', [2048]],
          ['1.weight', [1024, 1024, 4, 4]],
          ['1.bias', [1024]],
        ]),
      ),
    ).toEqual({ missing: [], unexpected: [], mismatched: [] });
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
    const net = new Sequential(
      new Linear(2, 16, { generator: new T.Generator(1) }),
      new Identity(),
      new Dropout(0.5, new T.Generator(2)),
    );
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

describe('nn modules over existing ops', () => {
  const int = (v: number[], shape: number[]) => T.cast(T.tensor(v, shape), 'int32');

  it('Embedding looks rows up like the embedding op; paddingIdx starts at zero and gets no gradient', async () => {
    const e = new T.nn.Embedding(5, 3, { paddingIdx: -1, generator: new T.Generator(2) });
    expect(e.paddingIdx).toBe(4);
    const w = await e.weight.data();
    expect(Array.from(w.slice(12))).toEqual([0, 0, 0]);
    const idx = int([1, 4, 1, 0], [2, 2]);
    const out = e.forward(idx);
    expect(out.shape).toEqual([2, 2, 3]);
    expect(await out.data()).toEqual(await T.embedding(idx, e.weight).data());
    T.sum(T.mul(out, 2)).backward();
    const g = await e.weight.grad!.data();
    // Row 1 is used twice, row 0 once, the padding row 4 not at all.
    expect(Array.from(g)).toEqual([2, 2, 2, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(() => new T.nn.Embedding(5, 3, { paddingIdx: 5 })).toThrow(
      'Embedding: paddingIdx 5 is out of range for 5 embeddings',
    );
    expect(() => new T.nn.Embedding(0, 3)).toThrow('Embedding: numEmbeddings must be a positive integer, got 0');
  });

  it('MaxPool2d is maxPool2d with its options (stride defaults to the kernel size)', async () => {
    const x = T.randn([2, 3, 7, 5], { generator: new T.Generator(4) });
    const pool = new T.nn.MaxPool2d(3, { stride: 2, padding: 1 });
    expect(await pool.forward(x).data()).toEqual(await T.maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }).data());
    expect(new T.nn.MaxPool2d(2).forward(x).shape).toEqual([2, 3, 3, 2]);
  });

  it('finds tensors and modules assigned without registration, ignoring registered (tied) ones', () => {
    class Careless extends T.Module {
      readonly ok: T.Tensor;
      readonly tied: T.Tensor;
      readonly stray: T.Tensor;
      readonly child = new T.nn.Identity();
      constructor() {
        super();
        this.ok = this.addParameter('ok', T.zeros([2]));
        this.tied = this.ok;
        this.stray = T.zeros([3]);
      }
    }
    expect(new Careless().findUnregistered()).toEqual(['stray', 'child']);
  });
});
