import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { SyntheticLeffaSource, flowSupervisionLoss, flowTargets, toBatch } from '@leffa-webgpu/data';
import { LeffaTrainer, flowEndPointError } from '../src/index.js';

beforeAll(async () => {
  await T.init();
});

describe('Leffa training', () => {
  it('a tiny run with the Leffa loss reduces the total loss', async () => {
    const trainer = new LeffaTrainer({
      config: LEFFA_CONFIGS.tiny,
      seed: 1,
      lr: 1e-3,
      weightDecay: 0,
      emaDecay: 0.9,
      leffa: { mode: 'on', maxTimestep: 1000 },
    });
    const source = new SyntheticLeffaSource('tryon', 64, 48, 0);
    // One fixed batch, seen repeatedly: the loss must fall.
    const batch = toBatch(source.take(2));
    const totals: number[] = [];
    const leffa: number[] = [];
    for (let step = 0; step < 12; step++) {
      const losses = trainer.step(batch);
      totals.push(await losses.total.item());
      leffa.push(await losses.leffa.item());
      T.dispose(losses);
    }
    expect(totals.every(Number.isFinite)).toBe(true);
    expect(leffa.some((v) => v > 0)).toBe(true);
    const first = (totals[0]! + totals[1]! + totals[2]!) / 3;
    const last = (totals[9]! + totals[10]! + totals[11]!) / 3;
    expect(last).toBeLessThan(first);
  });
});

describe('supervised attention flow', () => {
  // A 3x4 image whose layer flow has the image's own resolution, so upsampling is the identity.
  const H = 3;
  const W = 4;
  const truthPx = Float32Array.from(
    { length: H * W * 2 },
    (_, i) => (i % 2 === 0 ? (i / 2) % W : Math.floor(i / 2 / W)) * 0.5 + 0.25,
  );
  const valid = Uint8Array.from({ length: H * W }, (_, i) => (i === 5 ? 0 : 1));
  const report = (offset: [number, number]) => {
    const { grid } = flowTargets([truthPx], [valid], H, W);
    const moved = T.add(T.reshape(grid, [1, H * W, 2]), T.tensor(offset, [1, 1, 2]));
    grid.dispose();
    return { layer: 'test', height: H, width: W, value: moved };
  };

  it('flow targets use grid_sample coordinates (align_corners=false), matching the EPE metric', async () => {
    const { grid, valid: v } = flowTargets([truthPx], [valid], H, W);
    const g = await grid.data();
    // Pixel x maps to (2x + 1) / W - 1; y to (2y + 1) / H - 1.
    expect(g[2 * 7]).toBeCloseTo((2 * truthPx[2 * 7]! + 1) / W - 1, 6);
    expect(g[2 * 7 + 1]).toBeCloseTo((2 * truthPx[2 * 7 + 1]! + 1) / H - 1, 6);
    expect((await v.data())[5]).toBe(0);
    // The metric in pixels of the exact flow is 0.
    const r = report([0, 0]);
    expect(flowEndPointError(await r.value.data(), H, W, truthPx, valid, H, W)).toBeCloseTo(0, 4);
    T.dispose([grid, v, r]);
  });

  it('toBatch builds flow targets only when asked, and refuses examples without a flow', () => {
    const source = new SyntheticLeffaSource('tryon', 32, 24, 0);
    const [e] = source.take(1);
    const plain = toBatch([e!]);
    expect(plain.flow).toBeUndefined();
    const withFlow = toBatch([e!], { flow: true });
    expect(withFlow.flow!.grid.shape).toEqual([1, 32, 24, 2]);
    expect(() => toBatch([{ ...e!, flow: undefined }], { flow: true })).toThrow('toBatch: example 0 has no exact flow');
    T.dispose([plain, withFlow]);
  });

  it('is the mean end-point distance over valid pixels and weighted samples, and its gradient moves the flow to the truth', async () => {
    const exact = report([0, 0]);
    const off = report([0.3, -0.4]);
    const target = flowTargets([truthPx, truthPx], [valid, valid], H, W);
    const both = (r: ReturnType<typeof report>) => ({ ...r, value: T.concat([r.value, r.value], 0) });
    expect(await flowSupervisionLoss([both(exact)], target).item()).toBeCloseTo(0, 3);
    expect(await flowSupervisionLoss([both(off)], target).item()).toBeCloseTo(0.5, 4);
    // Averaged over layers; a sample of weight 0 does not count.
    expect(await flowSupervisionLoss([both(exact), both(off)], target, [1, 0]).item()).toBeCloseTo(0.25, 3);
    const value = T.tensor(await off.value.data(), [1, H * W, 2]);
    value.requiresGrad = true;
    const one = flowTargets([truthPx], [valid], H, W);
    flowSupervisionLoss([{ ...off, value }], one).backward();
    const g = await value.grad!.data();
    // d|d|/dd = d / |d| / count at valid pixels (all inside [-1, 1], so the clamp passes them through).
    expect(g[0]).toBeCloseTo(0.6 / 11, 4);
    expect(g[1]).toBeCloseTo(-0.8 / 11, 4);
    expect(g[2 * 5]).toBe(0);
    T.dispose([exact, off, target, value, one]);
  });

  it("weighs pixels by the targets' flow weights: a weighted mean of the end-point distance", async () => {
    // Pixel 0 is off by 0.5 (normalised), the rest exact; pixel 0 weighs 3, the ten other valid pixels 0.5 each.
    const weights = Float32Array.from({ length: H * W }, (_, i) => (i === 0 ? 3 : 0.5));
    const target = flowTargets([truthPx], [valid], H, W, [weights]);
    expect(Array.from(await target.valid.data())).toEqual(Array.from(weights, (w, i) => (i === 5 ? 0 : w)));
    const exact = report([0, 0]);
    const moved = T.add(
      exact.value,
      T.tensor(
        Float32Array.from({ length: H * W * 2 }, (_, i) => (i === 0 ? 0.5 : 0)),
        [1, H * W, 2],
      ),
    );
    expect(await flowSupervisionLoss([{ ...exact, value: moved }], target).item()).toBeCloseTo(
      // sqrt(|d|^2 + 1e-8): an exact pixel still counts 1e-4.
      (3 * Math.sqrt(0.25 + 1e-8) + 10 * 0.5 * 1e-4) / (3 + 10 * 0.5),
      6,
    );
    expect(() => flowTargets([truthPx], [valid], H, W, [new Float32Array(3)])).toThrow(
      'flowTargets: example 0 has 3 flow weights, expected 12 (3x4)',
    );
    T.dispose([target, exact, moved]);
  });

  it('pose examples can add the static background to the flow: the identity where both views show background', () => {
    const [plain] = new SyntheticLeffaSource('pose', 64, 48, 7).take(1);
    const [withBg] = new SyntheticLeffaSource('pose', 64, 48, 7, { backgroundFlow: 0.25 }).take(1);
    let person = 0;
    let background = 0;
    for (let i = 0; i < 64 * 48; i++) {
      if (plain!.flowValid![i]) {
        person++;
        expect(withBg!.flowWeight![i]).toBe(1);
        expect(withBg!.flow![2 * i]).toBe(plain!.flow![2 * i]);
        expect(withBg!.flow![2 * i + 1]).toBe(plain!.flow![2 * i + 1]);
      } else if (withBg!.flowValid![i]) {
        background++;
        expect(withBg!.flowWeight![i]).toBe(0.25);
        expect([withBg!.flow![2 * i], withBg!.flow![2 * i + 1]]).toEqual([i % 48, Math.floor(i / 48)]);
      } else expect(withBg!.flowWeight![i]).toBe(0);
    }
    expect(person).toBeGreaterThan(100);
    expect(background).toBeGreaterThan(64 * 48 * 0.4);
    expect(plain!.flowWeight).toBeUndefined();
    expect(() => new SyntheticLeffaSource('tryon', 32, 24, 0, { backgroundFlow: 0.5 }).take(1)).toThrow(
      'exampleFromSample: backgroundFlow is for pose transfer',
    );
  });
});
