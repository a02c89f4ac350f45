import * as T from '@leffa-webgpu/core';
import { SyntheticLeffaSource, toBatch } from '@leffa-webgpu/data';
import {
  Attention,
  type AttentionReport,
  LEFFA_CONFIGS,
  ReferenceConsumeProcessor,
  ReferenceStore,
} from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { LeffaTrainer, referenceReadoutLoss } from '../src/index.js';
import { hostLinear as linear } from './host-linear.js';

beforeAll(async () => {
  await T.init();
});

describe('reference readout', () => {
  it('the consuming processor reports softmax(q k_ref^T / sqrt(d)) v_ref with heads merged', async () => {
    const [dim, heads, dimHead, h, w] = [5, 2, 3, 2, 3];
    const n = h * w;
    const inner = heads * dimHead;
    const attn = new Attention(dim, { heads, dimHead });
    const gen = new T.Generator(9);
    const hidden = T.randn([1, n, dim], { generator: gen });
    const ref = T.randn([1, n, dim], { generator: gen });
    const store = new ReferenceStore([ref]);
    const request = { kind: 'flow' as const, tau: 2, minFraction: 0, imageHeight: 8, readout: true };
    new ReferenceConsumeProcessor(store, request).call(attn, hidden, undefined, {
      layer: 'l',
      grid: { height: h, width: w },
    });
    const readout = store.reports[0]!.readout!;
    expect(readout.shape).toEqual([1, n, inner]);

    const [x, r, wq, wk, wv] = await Promise.all(
      [hidden, ref, attn.to_q.weight, attn.to_k.weight, attn.to_v.weight].map((t) => t.data()),
    );
    const q = linear([...x!], wq!, n, dim, inner);
    const k = linear([...r!], wk!, n, dim, inner);
    const v = linear([...r!], wv!, n, dim, inner);
    const expected = new Array<number>(n * inner).fill(0);
    for (let hd = 0; hd < heads; hd++) {
      for (let i = 0; i < n; i++) {
        const logits = Array.from({ length: n }, (_, j) => {
          let s = 0;
          for (let d = 0; d < dimHead; d++) s += q[i * inner + hd * dimHead + d]! * k[j * inner + hd * dimHead + d]!;
          return s / Math.sqrt(dimHead);
        });
        const top = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - top));
        const z = e.reduce((a, b) => a + b, 0);
        for (let d = 0; d < dimHead; d++)
          expected[i * inner + hd * dimHead + d] = e.reduce(
            (a, p, j) => a + (p / z) * v[j * inner + hd * dimHead + d]!,
            0,
          );
      }
    }
    const got = await readout.data();
    got.forEach((g, i) => expect(g).toBeCloseTo(expected[i]!, 5));
    T.dispose([hidden, ref, ...store.produced]);
  });

  /** A report on an h x w grid whose readout is `slot` [B, C, h, w] in its first C channels, then `extra` more. */
  const report = (slot: T.Tensor, extra: number): AttentionReport => {
    const [b, c, h, w] = slot.shape as [number, number, number, number];
    const tokens = T.permute(T.reshape(slot, [b, c, h * w]), [0, 2, 1]);
    const readout = T.concat([tokens, T.full([b, h * w, extra], 7)], 2);
    return { layer: `grid ${h}x${w}`, height: h, width: w, value: T.zeros([b, h * w, 2]), readout };
  };

  it('is the mean square error per masked position and channel, pooled to each grid, over kept examples', async () => {
    const [b, c, h, w] = [2, 2, 4, 6];
    const target = T.randn([b, c, h, w], { generator: new T.Generator(1) });
    const maskData = new Float32Array(b * h * w).map((_, i) => (i % 5 < 2 ? 1 : 0));
    const mask = T.tensor(maskData, [b, 1, h, w]);
    const pooled = (x: T.Tensor) => T.avgPool2d(x, { kernelSize: 2 });
    // Exact at both grids: zero, whatever the extra channels hold.
    const exact = [report(target, 3), report(pooled(target), 1)];
    expect(await referenceReadoutLoss(exact, target, mask, [1, 1]).item()).toBeCloseTo(0, 6);

    // The fine grid off by 1 everywhere, the coarse by 2 everywhere: (1 + 4) / 2 at any mask.
    const off = [report(T.add(target, 1), 3), report(T.sub(pooled(target), 2), 1)];
    expect(await referenceReadoutLoss(off, target, mask, [1, 1]).item()).toBeCloseTo(2.5, 4);
    // Weighted by tokens: the 4x6 grid counts 24 to the 2x3 grid's 6, (24 * 1 + 6 * 4) / 30.
    expect(await referenceReadoutLoss(off, target, mask, [1, 1], 'tokens').item()).toBeCloseTo(1.6, 4);

    // The error only where masked, and only for kept examples: the second example's errors do not count.
    const bump = T.tensor(
      new Float32Array(b * c * h * w).map((_, i) => (i < c * h * w ? 3 * (1 - maskData[i % (h * w)]!) : 5)),
      [b, c, h, w],
    );
    expect(await referenceReadoutLoss([report(T.add(target, bump), 0)], target, mask, [1, 0]).item()).toBeCloseTo(0, 5);

    // Its gradient moves the readout towards the target.
    const slot = T.zeros([b, c, h, w]);
    slot.requiresGrad = true;
    referenceReadoutLoss([report(slot, 1)], target, mask, [1, 1]).backward();
    const [grad, t, m] = await Promise.all([slot.grad!.data(), target.data(), mask.data()]);
    grad.forEach((g, i) => {
      const masked = m[Math.floor(i / (c * h * w)) * h * w + (i % (h * w))]!;
      // === rather than toBe: an unmasked gradient may be -0.
      expect(Math.sign(g) === (masked ? -Math.sign(t[i]!) : 0)).toBe(true);
    });
  });

  it('refuses reports without a readout and readouts that do not fit the target', () => {
    const target = T.zeros([1, 4, 4, 6]);
    const mask = T.zeros([1, 1, 4, 6]);
    const plain: AttentionReport = { layer: 'a', height: 4, width: 6, value: T.zeros([1, 24, 2]) };
    expect(() => referenceReadoutLoss([plain], target, mask, [1])).toThrow(/no reports carry a readout/);
    const narrow = report(T.zeros([1, 2, 4, 6]), 1);
    expect(() => referenceReadoutLoss([narrow], target, mask, [1])).toThrow(
      /referenceReadoutLoss: grid 4x6's readout \[1, 24, 3\].*at least 4 channels/,
    );
    const finer = report(T.zeros([1, 4, 8, 6]), 0);
    expect(() => referenceReadoutLoss([finer], target, mask, [1])).toThrow(/a grid no finer than 4x6/);
    expect(() => referenceReadoutLoss([report(T.zeros([1, 4, 4, 6]), 0)], target, mask, [1, 1])).toThrow(
      /2 sample weights for a batch of 1/,
    );
  });
});

describe('LeffaTrainer with the reference losses (readout, mass)', () => {
  for (const [option, loss, atInit] of [
    ['referenceReadout', 'readout', 0.01],
    // At initialisation own and reference keys are alike: about log 2.
    ['referenceMass', 'mass', 0.3],
  ] as const) {
    it(`adds the ${loss} loss at its weight, and computes none without it`, async () => {
      const batch = toBatch(new SyntheticLeffaSource('tryon', 64, 48, 0).take(2));
      const losses = await Promise.all(
        [0, 0.5].map(async (weight) => {
          T.manualSeed(11); // the model's initial weights come from the global generator
          const trainer = new LeffaTrainer({
            config: LEFFA_CONFIGS.tiny,
            seed: 2,
            leffa: { mode: 'off' },
            referenceDropout: 0,
            [option]: weight,
          });
          const l = trainer.step(batch);
          const [total, diffusion, extra] = await Promise.all([l.total.item(), l.diffusion.item(), l[loss].item()]);
          T.dispose(l);
          return { total, diffusion, extra };
        }),
      );
      expect(losses[0]!.extra).toBe(0);
      expect(losses[0]!.total).toBeCloseTo(losses[0]!.diffusion, 6);
      // Same seed, same first step: the same diffusion loss, plus half the extra loss.
      expect(losses[1]!.diffusion).toBeCloseTo(losses[0]!.diffusion, 5);
      expect(losses[1]!.extra).toBeGreaterThan(atInit);
      expect(losses[1]!.total).toBeCloseTo(losses[1]!.diffusion + 0.5 * losses[1]!.extra, 5);
    });
  }
});
