import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

const { Linear, Sequential } = T.nn;
const { SGD, AdamW, EMA, clipGradNorm } = T.optim;

let device: T.Device;
beforeAll(async () => {
  device = await T.init();
});

const param = (values: number[], shape = [values.length]) => {
  const p = T.keep(T.tensor(values, shape));
  p.requiresGrad = true;
  return p;
};
const values = async (t: T.Tensor) => Array.from(await t.data());

class MLP extends T.Module {
  readonly l1: InstanceType<typeof Linear>;
  readonly l2: InstanceType<typeof Linear>;
  constructor(gen: T.Generator) {
    super();
    this.l1 = this.addModule('l1', new Linear(3, 24, { generator: gen }));
    this.l2 = this.addModule('l2', new Linear(24, 2, { generator: gen }));
  }
  forward(x: T.Tensor): T.Tensor {
    return this.l2.forward(T.tanh(this.l1.forward(x)));
  }
}

/** A fixed regression problem and a small MLP for it. */
function problem(seed: number) {
  const gen = new T.Generator(seed);
  const net = new MLP(gen);
  const { x, y } = T.tidy(() => {
    const x = T.randn([32, 3], { generator: gen });
    return { x, y: T.concat([T.sin(T.narrow(x, 1, 0, 1)), T.mul(T.narrow(x, 1, 1, 1), T.narrow(x, 1, 2, 1))], 1) };
  });
  T.keep(x);
  T.keep(y);
  const loss = () => T.mean(T.square(T.sub(net.forward(x), y)));
  return { net, x, y, loss };
}

describe('optimizers', () => {
  const makers: [string, (ps: T.Tensor[]) => T.Optimizer<any>][] = [
    ['SGD', (ps) => new SGD(ps, { lr: 0.2, momentum: 0.9, nesterov: true })],
    ['AdamW', (ps) => new AdamW(ps, { lr: 0.02, amsgrad: true })],
  ];
  for (const [name, make] of makers) {
    it(`${name} reduces a loss`, async () => {
      const { net, loss } = problem(3);
      const opt = make(net.parameters());
      const first = await T.tidy(() => loss().detach()).item();
      for (let step = 0; step < 60; step++) {
        T.tidy(() => {
          opt.zeroGrad();
          loss().backward();
          opt.step();
        });
      }
      const last = await T.tidy(() => loss().detach()).item();
      expect(last).toBeLessThan(first * 0.3);
      opt.dispose();
      net.dispose();
    });
  }

  it('keeps memory flat over many steps (AdamW, clipping, EMA)', async () => {
    const { net, loss } = problem(4);
    const opt = new AdamW(net.parameters(), { lr: 0.01 });
    const ema = new EMA(net, { decay: 0.9 });
    const live: number[] = [];
    for (let step = 0; step < 80; step++) {
      T.tidy(() => {
        opt.zeroGrad();
        loss().backward();
        clipGradNorm(net.parameters(), 0.5);
        opt.step();
        ema.update();
      });
      live.push(T.memoryStats().liveBytes);
    }
    await device.sync();
    // State is created on the first step; after that nothing may accumulate.
    expect(new Set(live.slice(1)).size).toBe(1);
    opt.zeroGrad();
    const before = T.memoryStats().liveBuffers;
    opt.dispose();
    ema.dispose();
    expect(T.memoryStats().liveBuffers).toBe(before - 2 * 4 - 4);
  });

  it('updates parameters in place, skips parameters without gradients and counts their steps', async () => {
    const a = param([1, 2, 3]);
    const b = param([4, 5]);
    const storage = a.storage;
    const opt = new SGD([a, b], { lr: 0.5 });
    a.grad = T.keep(T.tensor([1, 1, 2]));
    opt.step();
    expect(a.storage).toBe(storage);
    expect(await values(a)).toEqual([0.5, 1.5, 2]);
    expect(await values(b)).toEqual([4, 5]);
    expect(opt.stateDict().meta.steps).toEqual({ 0: 1 });
    opt.zeroGrad();
    expect(a.grad).toBeNull();
    // A bad gradient anywhere fails the whole step before any parameter changes.
    a.grad = T.keep(T.tensor([1, 1, 1]));
    b.grad = T.keep(T.tensor([1, 1, 1]));
    expect(() => opt.step()).toThrow('SGD.step: gradient of parameter 1 has shape [3], parameter is [2]');
    expect(await values(a)).toEqual([0.5, 1.5, 2]);
    expect(opt.stateDict().meta.steps).toEqual({ 0: 1 });
  });

  it('changes the learning rate through a uniform (no recompiles) and keeps group ratios', async () => {
    const a = param([1, 1]);
    const b = param([1, 1]);
    const opt = new SGD([{ params: [a] }, { params: [b], lr: 0.4 }], { lr: 0.1, momentum: 0.5 });
    expect(opt.paramGroups.map((g) => g.lrScale)).toEqual([1, 4]);
    const step = (lr: number) => {
      opt.lr = lr;
      a.grad = T.keep(T.ones([2]));
      b.grad = T.keep(T.ones([2]));
      opt.step();
      opt.zeroGrad();
    };
    step(0.1);
    const compiled = device.counters.pipelinesCompiled;
    for (const lr of [0.05, 0.025, 0.3]) step(lr);
    expect(device.counters.pipelinesCompiled).toBe(compiled);
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([0.3, 1.2]);
    expect(opt.lr).toBe(0.3);
  });

  it('rejects bad parameter lists with messages that say what is wrong', () => {
    const p = param([1, 2]);
    expect(() => new SGD([], { lr: 0.1 })).toThrow('SGD: got an empty parameter list');
    expect(() => new SGD(p as never, { lr: 0.1 })).toThrow(
      'SGD: expected an array of tensors or of parameter groups, got Tensor([2], float32, requiresGrad)',
    );
    expect(() => new SGD([p, 3] as never, { lr: 0.1 })).toThrow('SGD: parameter 1 is not a Tensor (got number)');
    expect(() => new SGD([p, p], { lr: 0.1 })).toThrow('SGD: parameter 1 (shape [2]) appears more than once');
    expect(() => new SGD([p, p.alias()], { lr: 0.1 })).toThrow('SGD: parameters 0 and 1 share one buffer');
    expect(() => new AdamW([T.mul(p, 2)], { lr: 0.1 })).toThrow('AdamW: parameter 0 (shape [2]) is not a leaf tensor');
    expect(() => new AdamW([T.tensor(new Int32Array([1]))], { lr: 0.1 })).toThrow(
      'AdamW: parameter 0 is int32; only float32 tensors can be optimized',
    );
    const gone = T.zeros([3]);
    gone.dispose();
    expect(() => new SGD([gone], { lr: 0.1 })).toThrow('SGD: parameter 0 (shape [3]) was disposed');
    expect(() => new SGD([{ params: [p] }, p] as never, { lr: 0.1 })).toThrow(/entry 1 is Tensor.*not a mix/);
    expect(() => new SGD([{ params: [] }], { lr: 0.1 })).toThrow('SGD group 0: has no parameters');
    expect(() => new SGD([{ params: [p], weight_decay: 1 } as never], { lr: 0.1 })).toThrow(
      "SGD group 0: unknown option 'weight_decay'",
    );
    expect(() => new SGD([p], { lr: 0.1, momentom: 0.9 } as never)).toThrow("SGD: unknown option 'momentom'");
  });

  it('rejects bad hyper-parameters, including a negative lr set later', () => {
    const p = param([1, 2]);
    expect(() => new SGD([p], { lr: -0.1 })).toThrow('SGD: invalid learning rate -0.1 (must be a finite number >= 0)');
    expect(() => new SGD([p], {} as never)).toThrow('SGD: invalid learning rate undefined');
    expect(() => new AdamW([p], { lr: NaN })).toThrow('AdamW: invalid learning rate NaN');
    expect(() => new SGD([p], { lr: 0.1, nesterov: true })).toThrow(
      'SGD: Nesterov momentum needs momentum > 0 and dampening = 0',
    );
    expect(() => new SGD([p], { lr: 0.1, weightDecay: -1 })).toThrow(
      'SGD: invalid weightDecay -1 (must be in [0, Infinity))',
    );
    expect(() => new AdamW([p], { lr: 0.1, betas: [0.9, 1] })).toThrow('AdamW: invalid beta2 1 (must be in [0, 1))');
    expect(() => new AdamW([{ params: [p], eps: -1 }], { lr: 0.1 })).toThrow('AdamW group 0: invalid eps -1');
    const opt = new AdamW([p], { lr: 0.1 });
    expect(() => (opt.lr = -1)).toThrow('AdamW: invalid learning rate -1');
    opt.paramGroups[0]!.lr = -2;
    p.grad = T.keep(T.ones([2]));
    expect(() => opt.step()).toThrow('AdamW: invalid learning rate -2');
    opt.paramGroups[0]!.lr = 0.1;
    p.grad = T.keep(T.ones([3]));
    expect(() => opt.step()).toThrow('AdamW.step: gradient of parameter 0 has shape [3], parameter is [2]');
    p.grad = T.keep(T.tensor(new Int32Array([1, 2])));
    expect(() => opt.step()).toThrow('AdamW.step: gradient of parameter 0 is int32, expected float32');
    const zeroBase = new SGD([{ params: [param([1])], lr: 0.5 }], { lr: 0 });
    expect(() => (zeroBase.lr = 0.1)).toThrow(/group 0 has its own lr but the optimizer's lr was 0/);
  });

  it('round-trips its state dict: a restored optimizer continues identically', async () => {
    const init = [0.3, -1.2, 2.5, 0.7, -0.1];
    const grads = [
      [0.5, -1, 2, 0.1, 0],
      [-0.3, 0.2, 1, -2, 0.4],
      [1, 1, -1, 0.5, 0.2],
    ];
    const run = (opt: T.Optimizer<any>, p: T.Tensor, from: number, to: number) => {
      for (let k = from; k < to; k++) {
        p.grad = T.keep(T.tensor(grads[k]!));
        opt.step();
        opt.zeroGrad();
      }
    };
    const a = param(init);
    const optA = new AdamW([a], { lr: 0.1, amsgrad: true, weightDecay: 0.05 });
    run(optA, a, 0, 1);
    const saved = optA.stateDict();
    const b = param(await values(a));
    const optB = new AdamW([b], { lr: 0.7 });
    optB.loadStateDict({ tensors: saved.tensors, meta: JSON.parse(JSON.stringify(saved.meta)) });
    expect(optB.paramGroups[0]!.amsgrad).toBe(true);
    expect(optB.lr).toBe(0.1);
    run(optA, a, 1, 3);
    run(optB, b, 1, 3);
    expect(await values(b)).toEqual(await values(a));
    // The loaded state is a copy: the source optimizer's later steps did not touch it.
    expect(optB.stateDict().tensors.get('state.0.exp_avg')).not.toBe(optA.stateDict().tensors.get('state.0.exp_avg'));

    const sgd = new SGD([param([1])], { lr: 0.1 });
    expect(() => sgd.loadStateDict(saved)).toThrow('SGD.loadStateDict: state is for AdamW, not SGD');
    const two = new AdamW([param(init), param([1])], { lr: 0.1 });
    expect(() => two.loadStateDict(saved)).toThrow(
      'AdamW.loadStateDict: group 0 holds parameters [0] in the state, [0, 1] here',
    );
    const wrongShape = new AdamW([param([1, 2])], { lr: 0.1 });
    expect(() => wrongShape.loadStateDict(saved)).toThrow(
      "AdamW.loadStateDict: 'state.0.exp_avg' is [5] float32, parameter 0 is [2] float32",
    );
    const extra = { tensors: new Map([...saved.tensors, ['state.0.velocity', T.zeros([5])]]), meta: saved.meta };
    expect(() => new AdamW([param(init)], { lr: 0.1 }).loadStateDict(extra)).toThrow(
      "unexpected state tensor 'state.0.velocity'",
    );
  });
});

describe('clipGradNorm', () => {
  it('clips on the GPU without reading back', async () => {
    const a = param([0, 0, 0]);
    const b = param([0, 0]);
    a.grad = T.keep(T.tensor([3, 0, 4]));
    b.grad = T.keep(T.tensor([0, 12]));
    await device.sync();
    const before = { ...device.counters };
    const norm = clipGradNorm([a, b], 6.5);
    expect(device.counters.readbacks).toBe(before.readbacks);
    expect(device.counters.submits).toBe(before.submits);
    expect(norm.shape).toEqual([]);
    expect(await norm.item()).toBe(13);
    const coef = 6.5 / (13 + 1e-6);
    expect(await values(a.grad)).toEqual([3, 0, 4].map((v) => Math.fround(v * Math.fround(coef))));
    expect(await values(b.grad)).toEqual([0, 12].map((v) => Math.fround(v * Math.fround(coef))));
  });

  it('scales a buffer shared by several gradients once, counting each gradient in the norm', async () => {
    const a = param([1, 2]);
    const b = param([3, 4]);
    a.grad = T.keep(T.tensor([1, 1]));
    b.grad = T.keep(a.grad.alias());
    const norm = await clipGradNorm([a, b], 1).item();
    expect(norm).toBeCloseTo(2, 6);
    expect((await values(a.grad))[0]).toBeCloseTo(1 / (2 + 1e-6), 6);
    expect(await values(b.grad)).toEqual(await values(a.grad));
  });

  it('reduces gradients spanning many workgroups, empty gradients, and more partials than one workgroup', async () => {
    const big = param(new Array(3).fill(0));
    const n = 256 * 4096 + 12345;
    const g = T.keep(T.randn([n], { generator: new T.Generator(11) }));
    const host = await g.data();
    big.grad = T.keep(T.reshape(g, [n]));
    const empty = T.keep(T.zeros([0]));
    empty.requiresGrad = true;
    empty.grad = T.keep(T.zeros([0]));
    let sq = 0;
    let mx = 0;
    for (const v of host) {
      sq += v * v;
      mx = Math.max(mx, Math.abs(v));
    }
    const l2 = await clipGradNorm([big, empty], 1e9).item();
    expect(Math.abs(l2 - Math.sqrt(sq)) / Math.sqrt(sq)).toBeLessThan(1e-5);
    expect(await clipGradNorm([big, empty], 1e9, Infinity).item()).toBe(Math.fround(mx));
    // 300 gradients: 300 partial results for the final reduction's 256 threads.
    const many = Array.from({ length: 300 }, (_, i) => {
      const p = param([0, 0]);
      p.grad = T.keep(T.tensor([i % 7, -(i % 5) / 2]));
      return p;
    });
    let l1 = 0;
    for (let i = 0; i < 300; i++) l1 += (i % 7) + (i % 5) / 2;
    expect(await clipGradNorm(many, 1e9, 1).item()).toBe(l1);
  });

  it('returns 0 when no parameter has a gradient and rejects bad arguments', async () => {
    const p = param([1]);
    expect(await clipGradNorm([p], 1).item()).toBe(0);
    expect(() => clipGradNorm([p], -1)).toThrow('clipGradNorm: maxNorm must be a number >= 0, got -1');
    expect(() => clipGradNorm([p], 1, 0)).toThrow(
      'clipGradNorm: normType must be a positive number or Infinity, got 0',
    );
    expect(() => clipGradNorm(p as never, 1)).toThrow('clipGradNorm: expected an array of tensors, got Tensor');
    expect(() => clipGradNorm([p, {}] as never, 1)).toThrow('clipGradNorm: parameter 1 is not a Tensor (got object)');
  });
});

describe('EMA', () => {
  it('averages, swaps in for evaluation and back', async () => {
    const p = param([0, 10]);
    const ema = new EMA([p], { decay: 0.5, updateAfterStep: 1 });
    expect(ema.currentDecay).toBe(0);
    p.assign(T.tensor([2, 20]));
    ema.update(); // copy: [2, 20]
    expect(ema.currentDecay).toBe(0.5);
    p.assign(T.tensor([4, 40]));
    ema.update(); // [3, 30]
    p.assign(T.tensor([8, 80]));
    ema.store();
    ema.copyTo();
    expect(await values(p)).toEqual([3, 30]);
    expect(p.storage).not.toBe(ema.stateDict().tensors.get('0')!.storage);
    ema.restore();
    expect(await values(p)).toEqual([8, 80]);
    expect(() => ema.restore()).toThrow('EMA.restore: nothing stored; call store() first');
  });

  it('updates many tensors of any size, several per dispatch', async () => {
    // 19 tensors (more than one dispatch holds), an empty one among them, some spanning several workgroups.
    const sizes = [1, 7, 4096, 0, 5000, 3, 257, 12, 9000, 1, 2, 65, 64, 4097, 5, 6, 300, 1, 33];
    const start = sizes.map((n, t) => Array.from({ length: n }, (_, i) => Math.sin(t + i * 0.37)));
    const params = start.map((v) => param(v));
    const ema = new EMA(params, { decay: 0.75 });
    const expected = start.map((v) => [...v]);
    for (let step = 1; step <= 3; step++) {
      const next = sizes.map((n, t) => Array.from({ length: n }, (_, i) => Math.cos(step * (t + 1) + i * 0.11)));
      params.forEach((p, t) => p.assign(T.tensor(next[t]!, [sizes[t]!])));
      ema.update();
      expected.forEach((e, t) => e.forEach((x, i) => (e[i] = x + 0.25 * (next[t]![i]! - x))));
    }
    const shadows = ema.stateDict().tensors;
    for (let t = 0; t < sizes.length; t++) {
      const got = await values(shadows.get(String(t))!);
      expect(got.length).toBe(sizes[t]);
      const err = got.reduce((m, x, i) => Math.max(m, Math.abs(x - expected[t]![i]!)), 0);
      expect(err, `tensor ${t}`).toBeLessThan(1e-6);
    }
    ema.dispose();
    T.dispose(params);
  });

  it('ramps the decay up with warmup and respects its bounds', () => {
    const ema = new EMA([param([1])], { decay: 0.8, minDecay: 0.5, warmup: true });
    const decays: number[] = [];
    for (let i = 0; i < 30; i++) {
      decays.push(ema.currentDecay);
      ema.update();
    }
    expect(decays[0]).toBe(0.5); // 1 - 2^(-2/3) = 0.37 is raised to minDecay
    expect(decays[5]).toBeCloseTo(1 - 7 ** (-2 / 3), 12);
    expect(decays[29]).toBe(0.8); // reached once (1 + t)^(-2/3) <= 0.2, t >= 11
    expect(decays.every((d, i) => i === 0 || d >= decays[i - 1]!)).toBe(true);
  });

  it('copies into a module by parameter name and round-trips its state dict', async () => {
    const gen = new T.Generator(5);
    const net = new Sequential(new Linear(3, 4, { generator: gen }), new Linear(4, 2, { generator: gen }));
    const ema = new EMA(net, { decay: 0.75 });
    for (const p of net.parameters()) p.assign(T.add(p, 1));
    ema.update();
    const sd = ema.stateDict();
    expect([...sd.tensors.keys()]).toEqual(['0.weight', '0.bias', '1.weight', '1.bias']);
    const twin = new Sequential(new Linear(3, 4), new Linear(4, 2));
    ema.copyTo(twin);
    expect(await values(twin.at(1).parameters()[0]!)).toEqual(await values(sd.tensors.get('1.weight')!));

    const other = new EMA(twin, { decay: 0.75 });
    other.loadStateDict({ tensors: sd.tensors, meta: JSON.parse(JSON.stringify(sd.meta)) });
    expect(other.step).toBe(1);
    expect(await values(other.stateDict().tensors.get('0.bias')!)).toEqual(await values(sd.tensors.get('0.bias')!));
    expect(() => new EMA(twin, { decay: 0.5 }).loadStateDict(sd)).toThrow(/saved hyper-parameters .* differ/);
    const partial = { tensors: new Map([...sd.tensors].filter(([k]) => k !== '1.bias')), meta: sd.meta };
    expect(() => other.loadStateDict(partial)).toThrow('EMA.loadStateDict: 1 problem(s)\n  missing: 1.bias');
    expect(() => ema.copyTo(new Sequential(new Linear(3, 4)))).toThrow(
      'EMA.copyTo: the module has no parameter(s) 1.weight, 1.bias',
    );
    expect(() => ema.copyTo([T.zeros([4, 3])])).toThrow('EMA.copyTo: expected a Module or 4 tensors, got 1 tensors');
  });

  it('averages part of a module under the names a map gives, so its shadows load into the whole module', async () => {
    const gen = new T.Generator(6);
    const net = new Sequential(new Linear(3, 4, { generator: gen }), new Linear(4, 2, { generator: gen }));
    const part = new Map([...net.namedParameters()].filter(([n]) => n.startsWith('1.')));
    const ema = new EMA(part, { decay: 0 });
    for (const p of net.parameters()) p.assign(T.add(p, 1));
    ema.update();
    const sd = ema.stateDict();
    expect([...sd.tensors.keys()]).toEqual(['1.weight', '1.bias']);
    const twin = new Sequential(new Linear(3, 4), new Linear(4, 2));
    twin.loadStateDict(sd.tensors, { strict: false });
    expect(await values(twin.at(1).parameters()[1]!)).toEqual(await values(net.at(1).parameters()[1]!));
    expect(() => new EMA(new Map([['w', 3]]) as never)).toThrow("EMA: parameter 'w' is not a Tensor (got number)");
    expect(() => new EMA('w' as never)).toThrow(
      'EMA: expected a Module, a map of named tensors or an array of tensors, got string',
    );
  });

  it('rejects bad options', () => {
    const p = param([1]);
    expect(() => new EMA([], {})).toThrow('EMA: got no parameters');
    expect(() => new EMA([p], { decay: 1.5 })).toThrow('EMA: decay must be in [0, 1], got 1.5');
    expect(() => new EMA([p], { updateAfterStep: -1 })).toThrow('EMA: updateAfterStep must be an integer >= 0, got -1');
    expect(() => new EMA([p], { warmup: { power: 0 } })).toThrow('EMA: warmup needs invGamma > 0 and power > 0');
    expect(() => new EMA([p, p])).toThrow("EMA: parameter '1' appears more than once");
  });
});

describe('schedules', () => {
  it('follow their closed forms at key points', () => {
    const cos = T.optim.warmupCosineLR({ baseLr: 1, warmupSteps: 4, totalSteps: 14, minLr: 0.1 });
    expect([0, 2, 4, 9, 14, 50].map(cos)).toEqual([0, 0.5, 1, 0.55, 0.1, 0.1].map((v, i) => (i === 3 ? cos(9) : v)));
    expect(cos(9)).toBeCloseTo(0.55, 12);
    expect(T.optim.constantLR(0.2)(1000)).toBe(0.2);
  });

  it('reject bad arguments', () => {
    expect(() => T.optim.constantLR(-1)).toThrow('constantLR: baseLr must be a finite number >= 0, got -1');
    expect(() => T.optim.cosineAnnealingLR({ baseLr: 1, tMax: 0 })).toThrow(
      'cosineAnnealingLR: tMax must be an integer >= 1, got 0',
    );
    expect(() => T.optim.warmupCosineLR({ baseLr: 1, warmupSteps: 5, totalSteps: 3 })).toThrow(
      'totalSteps 3 is shorter than warmupSteps 5',
    );
    expect(() => T.optim.constantLR(1)(-1)).toThrow('constantLR: step must be an integer >= 0, got -1');
  });
});
