import * as T from '@leffa-webgpu/core';
import { Attention, type AttentionReport, ReferenceConsumeProcessor, ReferenceStore } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { referenceMassLoss } from '../src/index.js';
import { hostLinear as linear } from './host-linear.js';

beforeAll(async () => {
  await T.init();
});

describe('reference mass', () => {
  it("the consuming processor reports the log-odds of the reference keys' share of each query's joint softmax", async () => {
    const [dim, heads, dimHead, h, w] = [5, 2, 3, 2, 3];
    const n = h * w;
    const inner = heads * dimHead;
    const attn = new Attention(dim, { heads, dimHead });
    const gen = new T.Generator(4);
    // Scaled up so that the shares are far from one half.
    const hidden = T.mul(T.randn([1, n, dim], { generator: gen }), 3);
    const ref = T.mul(T.randn([1, n, dim], { generator: gen }), 3);
    const store = new ReferenceStore([ref]);
    const request = { kind: 'flow' as const, tau: 2, minFraction: 0, imageHeight: 8, referenceMass: true };
    new ReferenceConsumeProcessor(store, request).call(attn, hidden, undefined, {
      layer: 'l',
      grid: { height: h, width: w },
    });
    const logit = store.reports[0]!.referenceLogit!;
    expect(logit.shape).toEqual([1, heads, n]);
    expect(store.reports[0]!.readout).toBeUndefined();

    const [x, r, wq, wk] = await Promise.all([hidden, ref, attn.to_q.weight, attn.to_k.weight].map((t) => t.data()));
    const q = linear(x!, wq!, n, dim, inner);
    const keys = [...linear(x!, wk!, n, dim, inner), ...linear(r!, wk!, n, dim, inner)];
    const got = await logit.data();
    for (let hd = 0; hd < heads; hd++)
      for (let i = 0; i < n; i++) {
        const scores = Array.from({ length: 2 * n }, (_, j) => {
          let s = 0;
          for (let d = 0; d < dimHead; d++) s += q[i * inner + hd * dimHead + d]! * keys[j * inner + hd * dimHead + d]!;
          return s / Math.sqrt(dimHead);
        });
        const top = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - top));
        const share = e.slice(n).reduce((a, b) => a + b, 0) / e.reduce((a, b) => a + b, 0);
        expect(1 / (1 + Math.exp(-got[hd * n + i]!))).toBeCloseTo(share, 5);
      }
    T.dispose([hidden, ref, ...store.produced]);
  });

  const report = (logit: T.Tensor, height: number, width: number): AttentionReport => ({
    layer: `grid ${height}x${width}`,
    height,
    width,
    value: T.zeros([logit.shape[0]!, height * width, 2]),
    referenceLogit: logit,
  });

  it('is -log of the share inside the mask, over heads, kept examples and layers', async () => {
    const [b, h, w] = [2, 4, 6];
    const maskData = new Float32Array(b * h * w).map((_, i) => (i % 3 === 0 ? 1 : 0));
    const mask = T.tensor(maskData, [b, 1, h, w]);
    // Even odds everywhere: log 2 at any mask.
    const even = [report(T.zeros([b, 2, h * w]), h, w), report(T.zeros([b, 1, 6]), 2, 3)];
    expect(await referenceMassLoss(even, mask, [1, 1]).item()).toBeCloseTo(Math.log(2), 5);
    // Logit 3 where masked and -5 elsewhere (unmasked positions do not count): -log sigmoid(3).
    const logit = T.tensor(
      Array.from({ length: b * 2 * h * w }, (_, i) =>
        maskData[Math.floor(i / (2 * h * w)) * h * w + (i % (h * w))] ? 3 : -5,
      ),
      [b, 2, h * w],
    );
    const want = Math.log(1 + Math.exp(-3));
    expect(await referenceMassLoss([report(logit, h, w)], mask, [1, 1]).item()).toBeCloseTo(want, 5);
    // A dropped example's positions do not count either: its logits are -5 where masked.
    const second = T.tensor(
      Array.from({ length: b * 2 * h * w }, (_, i) => (i < 2 * h * w ? 3 : -5)),
      [b, 2, h * w],
    );
    expect(await referenceMassLoss([report(second, h, w)], mask, [1, 0]).item()).toBeCloseTo(want, 5);
    expect(() => referenceMassLoss([{ ...even[0]!, referenceLogit: undefined }], mask, [1, 1])).toThrow(
      /no reports carry a referenceLogit/,
    );
    expect(() => referenceMassLoss([report(T.zeros([b, 2, 35]), 5, 7)], mask, [1, 1])).toThrow(
      /grid 5x7's referenceLogit \[2, 2, 35\] on a 5x7 grid does not fit/,
    );
  });

  it('is differentiable: raising the reference logits lowers it', async () => {
    const mask = T.ones([1, 1, 2, 3]);
    const logit = T.zeros([1, 2, 6]);
    logit.requiresGrad = true;
    referenceMassLoss([report(logit, 2, 3)], mask, [1]).backward();
    // d/dx softplus(-x) = -sigmoid(-x) = -1/2 at 0, over 2 heads x 6 positions.
    for (const g of await logit.grad!.data()) expect(g).toBeCloseTo(-0.5 / 12, 6);
  });
});
