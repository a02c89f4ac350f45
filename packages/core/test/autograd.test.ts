import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

const leaf = (data: number[], shape: number[]) => {
  const t = T.tensor(data, shape);
  t.requiresGrad = true;
  return t;
};
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 2.3 + seed) * 0.9 + 0.1);

describe('autograd', () => {
  it('accumulates gradients of inputs used several times', async () => {
    const x = leaf([1, 2, 3], [3]);
    // d/dx sum(x*x + x) = 2x + 1, x reaches the output through three paths.
    T.add(T.mul(x, x), x).sum().backward();
    expect(Array.from(await x.grad!.data())).toEqual([3, 5, 7]);
    // A second backward accumulates into .grad, as in PyTorch.
    T.sum(x).backward();
    expect(Array.from(await x.grad!.data())).toEqual([4, 6, 8]);
  });

  it('sums the gradients of an output read by many ops in kernels of up to four', async () => {
    const factors = [0.5, -2, 3, 0.25, 1.75, -1, 4, 1.5];
    // h = 1.5 x read by k ops; the backward's dispatches, and x's gradient.
    const run = async (k: number) => {
      const x = leaf(values(8, 1), [2, 4]);
      const h = T.mul(x, 1.5);
      const loss = factors
        .slice(0, k)
        .map((f) => T.mul(h, f).sum())
        .reduce((a, b) => T.add(a, b));
      const device = T.activeDevice();
      const before = device.counters.dispatches;
      loss.backward();
      const dispatches = device.counters.dispatches - before;
      const want = 1.5 * factors.slice(0, k).reduce((a, b) => a + b, 0);
      for (const v of await x.grad!.data()) expect(v).toBeCloseTo(want, 5);
      return dispatches;
    };
    const [two, three, eight] = [await run(2), await run(3), await run(8)];
    // Two and three contributions take one summing kernel each, so their difference is one path's own kernels;
    // eight take three (four summed, then that and three more, then that and one) where pairwise sums take seven.
    const perPath = three - two;
    expect(eight - two).toBe(6 * perPath + 2);
  });

  it('gives each input of add its own gradient object', async () => {
    const a = leaf([1, 2], [2]);
    const b = leaf([3, 4], [2]);
    T.add(a, b).sum().backward();
    expect(a.grad).not.toBe(b.grad);
    a.grad!.dispose();
    expect(Array.from(await b.grad!.data())).toEqual([1, 1]);
  });

  it("hands add's gradient to one operand without a copy and gives the other its own storage", async () => {
    const a = leaf([1, 2], [2]);
    const b = leaf([3, 4], [2]);
    // d/da = d/db = [3, 4], total norm sqrt(50): clipGradNorm must scale each in place once (shared storage
    // would be scaled twice).
    T.mul(T.add(a, b), T.tensor([3, 4], [2]))
      .sum()
      .backward();
    expect(a.grad!.storage).not.toBe(b.grad!.storage);
    const maxNorm = Math.sqrt(50) / 2;
    T.clipGradNorm([a, b], maxNorm);
    const want = [3, 4].map((v) => (v * maxNorm) / (Math.sqrt(50) + 1e-6));
    for (const g of [a.grad!, b.grad!]) {
      const got = Array.from(await g.data());
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
    }
  });

  it("hands add's gradient to two non-leaf operands without copying it (a residual connection)", async () => {
    if (!T.activeDevice().report.features.includes('timestamp-query')) return;
    const x = leaf([1, -2, 3, 0.5], [4]);
    const h = T.mul(x, 1.5);
    const loss = T.add(T.mul(h, 2), T.exp(h)).sum();
    const times = await T.activeDevice().profile(() => loss.backward());
    // The sum's fill, exp's and the two muls' gradients, one kernel summing h's two: no copy kernel ('a').
    expect([...times.keys()].filter((k) => /:a$/.test(k))).toEqual([]);
    const want = [1, -2, 3, 0.5].map((v) => 1.5 * (2 + Math.exp(1.5 * v)));
    (await x.grad!.data()).forEach((g, i) => expect(g).toBeCloseTo(want[i]!, 4));
  });

  it('does not record under noGrad or through detach', () => {
    const x = leaf([1, 2], [2]);
    expect(T.noGrad(() => T.mul(x, 2)).requiresGrad).toBe(false);
    expect(T.mul(x.detach(), 2).requiresGrad).toBe(false);
    expect(T.mul(x, 2).requiresGrad).toBe(true);
  });

  it('frees the graph after backward unless retainGraph is set', () => {
    const x = leaf([1, 2], [2]);
    const y = T.exp(x).sum();
    y.backward(undefined, { retainGraph: true });
    y.backward();
    expect(() => y.backward()).toThrow(/already freed/);
  });

  it('rejects backward from a non-scalar without a gradient', () => {
    const x = leaf([1, 2], [2]);
    expect(() => T.exp(x).backward()).toThrow(/one-element tensor, got \[2\]/);
    expect(() => T.tensor([1]).backward()).toThrow(/does not require grad/);
  });

  it('passes finite-difference checks on composite expressions', async () => {
    const a = leaf(values(12, 1), [3, 4]);
    const b = leaf(values(4, 2), [4]);
    const w = leaf(values(8, 3), [4, 2]);
    const fn = (x: T.Tensor, y: T.Tensor, z: T.Tensor) =>
      T.softmax(T.matmul(T.tanh(T.mul(T.add(x, y), y)), z), -1).mul(T.sigmoid(T.sum(x, 1, true)));
    const r = await T.gradcheck(fn, [a, b, w]);
    expect(r.ok, JSON.stringify(r.worst)).toBe(true);
  });

  it('passes finite-difference checks on reductions and layout ops', async () => {
    const x = leaf(values(24, 4), [2, 3, 4]);
    const fns: [string, (t: T.Tensor) => T.Tensor][] = [
      ['mean', (t) => T.mean(t, [0, 2])],
      ['var', (t) => T.variance(t, 1)],
      ['max', (t) => T.max(t, -1)],
      ['logsumexp', (t) => T.logsumexp(t, [1, 2])],
      ['permute+slice', (t) => T.slice(T.permute(t, [2, 0, 1]), [{ start: 1 }, null, { step: 2 }])],
      ['pad+flip', (t) => T.flip(T.pad(t, [1, 0, 2, 1]), [1])],
      ['concat+split', (t) => T.concat(T.split(t, [1, 3], 2).reverse(), 2)],
      ['expand', (t) => T.expand(T.sum(t, 0, true), [3, 3, 4])],
      ['gelu/silu', (t) => T.add(T.gelu(t), T.silu(t))],
      ['logSoftmax', (t) => T.logSoftmax(t, 1)],
    ];
    for (const [name, fn] of fns) {
      const r = await T.gradcheck(fn, [x]);
      expect(r.ok, `${name}: ${JSON.stringify(r.worst)}`).toBe(true);
    }
  });

  it('detects a wrong backward rule', async () => {
    const broken = T.defineOp('test_broken_square', {
      forward: (_ctx, x: T.Tensor) => T.map('test', 'a * a', [x]),
      backward: ({ args: [x] }, g) => [T.mul(g, x)], // should be 2 * g * x
    });
    const r = await T.gradcheck((t) => broken(t), [leaf([0.5, -1, 2], [3])]);
    expect(r.ok).toBe(false);
  });
});
