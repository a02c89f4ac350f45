import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DensePoseScore, DensePoseTrainer, densePoseLoss, syntheticDensePoseExample, warpIuv } from '../src/index.js';
import { renderDensePose } from '@leffa-webgpu/pipelines';
import {
  buildParts,
  buildSkeleton,
  parula,
  type Pose,
  renderPerson,
  Rng,
  sampleBodyShape,
  sampleLowerGarment,
  samplePose,
  sampleUpperGarment,
} from '@leffa-webgpu/data';

const tmp = mkdtempSync(join(tmpdir(), 'densepose-train-'));

beforeAll(async () => {
  await T.init();
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** PyTorch's smooth L1 of one difference. */
const smoothL1 = (d: number, beta = 1) => (Math.abs(d) < beta ? (0.5 * d * d) / beta : Math.abs(d) - 0.5 * beta);

describe('DensePose training pieces', () => {
  it("losses: CE over every pixel; smooth-L1 on the true part's U/V channel at foreground pixels only", async () => {
    // N = 2 images of 1 x 2 pixels. Truth: image 0 = [part 3, background], image 1 = [part 24, part 1].
    const N = 2;
    const P = 2;
    const truthParts = [3, 0, 24, 1];
    const truthU = [0.2, 0.9, 0.6, 0.1];
    const truthV = [0.8, 0.9, 0.3, 0.5];
    // Logits: zero except one entry per pixel.
    const logit: [number, number][] = [
      [3, 2],
      [5, 1.5],
      [0, -1],
      [1, 0.5],
    ]; // [class, value] per pixel
    const I = new Float32Array(N * 25 * P);
    logit.forEach(([c, val], k) => (I[(Math.floor(k / P) * 25 + c) * P + (k % P)] = val));
    // U/V: 0.5 everywhere (the distractor channels), specific values on the true channels.
    const U = new Float32Array(N * 24 * P).fill(0.5);
    const V = new Float32Array(N * 24 * P).fill(0.5);
    const predU = [0.5, 0, 0.1, 0.4];
    const predV = [0.3, 0, 0.9, 0.5];
    truthParts.forEach((p, k) => {
      if (p === 0) return;
      const at = (Math.floor(k / P) * 24 + p - 1) * P + (k % P);
      U[at] = predU[k]!;
      V[at] = predV[k]!;
    });
    const ce = logit.map(([c, val], k) => {
      const lse = Math.log(24 + Math.exp(val));
      return lse - (c === truthParts[k] ? val : 0);
    });
    const expectedPart = ce.reduce((a, b) => a + b) / 4;
    const uvTerms = (beta: number) =>
      truthParts.map((p, k) =>
        p === 0 ? 0 : smoothL1(predU[k]! - truthU[k]!, beta) + smoothL1(predV[k]! - truthV[k]!, beta),
      );
    const expectedUvSum = uvTerms(1).reduce((a, b) => a + b) / N;

    const uT = T.tensor(U, [N, 24, 1, P]);
    uT.requiresGrad = true;
    const out = { I: T.tensor(I, [N, 25, 1, P]), U: uT, V: T.tensor(V, [N, 24, 1, P]) };
    const targets = {
      parts: T.tensor(Int32Array.from(truthParts), [N, 1, P]),
      u: T.tensor(truthU, [N, 1, P]),
      v: T.tensor(truthV, [N, 1, P]),
    };
    const l = densePoseLoss(out, targets);
    expect(await l.part.item()).toBeCloseTo(expectedPart, 5);
    expect(await l.uv.item()).toBeCloseTo(expectedUvSum, 6);
    expect(await l.total.item()).toBeCloseTo(expectedPart + 0.01 * expectedUvSum, 5);
    // Gradient reaches U only on the true part's channel at foreground pixels.
    l.total.backward();
    const g = await uT.grad!.data();
    g.forEach((val, i) => {
      const pix = i % P;
      const ch = Math.floor(i / P) % 24;
      const n = Math.floor(i / (24 * P));
      const k = n * P + pix;
      const onTrue = truthParts[k]! > 0 && ch === truthParts[k]! - 1;
      if (onTrue) expect(val).toBeCloseTo((0.01 * (predU[k]! - truthU[k]!)) / N, 6);
      else expect(Math.abs(val)).toBe(0);
    });
    // 'mean' over foreground pixels, and the linear branch of smooth L1 (beta 0.1).
    const mean = densePoseLoss(out, targets, { uvReduction: 'mean', beta: 0.1, weights: { part: 0.5, uv: 2 } });
    const expectedMean = uvTerms(0.1).reduce((a, b) => a + b) / 3;
    expect(await mean.uv.item()).toBeCloseTo(expectedMean, 5);
    expect(await mean.total.item()).toBeCloseTo(0.5 * expectedPart + 2 * expectedMean, 5);
    expect(() => densePoseLoss(out, { ...targets, parts: T.tensor(Float32Array.from(truthParts), [N, 1, P]) })).toThrow(
      /parts must be int32 \[N, H, W\]/,
    );
    expect(() => densePoseLoss({ ...out, U: T.zeros([N, 25, 1, P]) }, targets)).toThrow(/U must be \[2, 24, h, w\]/);
  });

  it('metrics on hand-made maps: 25-class mIoU, pixel accuracy, UV error on correctly labelled pixels', () => {
    const truth = { parts: [0, 0, 2, 2, 5, 24], u: [0, 0, 0.5, 0.5, 0.2, 0.9], v: [0, 0, 0.5, 0.5, 0.2, 0.1] };
    const pred = { parts: [0, 2, 2, 5, 5, 0], u: [0, 0.3, 0.6, 0.1, 0.4, 0], v: [0, 0.3, 0.3, 0.1, 0.2, 0] };
    const m = new DensePoseScore().add(pred, truth).metrics();
    expect(m.pixelAccuracy).toBeCloseTo(3 / 6, 9);
    // IoU: background 1/3 (tp 1, truth 2, pred 2), part 2: 1/3, part 5: 1/2, part 24: 0.
    expect(m.iou[0]).toBeCloseTo(1 / 3, 9);
    expect(m.iou[2]).toBeCloseTo(1 / 3, 9);
    expect(m.iou[5]).toBeCloseTo(1 / 2, 9);
    expect(m.iou[24]).toBe(0);
    expect(Number.isNaN(m.iou[7]!)).toBe(true);
    expect(m.meanIoU).toBeCloseTo((1 / 3 + 1 / 3 + 1 / 2 + 0) / 4, 9);
    expect(m.meanIoUAll).toBeCloseTo((1 / 3 + 1 / 3 + 1 / 2) / 25, 9);
    // Correct foreground pixels: 2 (|0.1| + |0.2|) and 4 (|0.2| + 0).
    expect(m.uvPixels).toBe(2);
    expect(m.uvError).toBeCloseTo((0.3 + 0.2) / 2, 6);
    expect(() => new DensePoseScore().add({ ...pred, u: [0] }, truth)).toThrow(/maps differ in size/);
  });

  it('flip rule: warpIuv of a flipped person equals the exactly mirrored synthetic person (parts swapped, V -> 1 - V)', () => {
    const W = 48;
    const H = 64;
    const rng = new Rng(11);
    const body = sampleBodyShape(rng.fork());
    const look = {
      skin: [200, 160, 120],
      hair: [20, 20, 20],
      shoes: [30, 30, 30],
      hairline: 0.3,
      longHair: false,
      upper: sampleUpperGarment(rng.fork()),
      lower: sampleLowerGarment(rng.fork()),
      background: () => [255, 255, 255],
    } as Parameters<typeof renderPerson>[1];
    // Asymmetric arms and legs so that the flip matters.
    const p: Pose = {
      ...samplePose(rng.fork()),
      lean: 0.05,
      headTilt: 0.15,
      rUpperArm: -0.9,
      rLowerArm: -0.8,
      lUpperArm: 0.3,
      lLowerArm: -1.2,
      rUpperLeg: -0.2,
      rLowerLeg: 0,
      lUpperLeg: 0.05,
      lLowerLeg: 0.1,
    };
    const mirrored: Pose = {
      lean: -p.lean,
      headTilt: -p.headTilt,
      rUpperArm: -p.lUpperArm,
      rLowerArm: -p.lLowerArm,
      lUpperArm: -p.rUpperArm,
      lLowerArm: -p.rLowerArm,
      rUpperLeg: -p.lUpperLeg,
      rLowerLeg: -p.lLowerLeg,
      lUpperLeg: -p.rUpperLeg,
      lLowerLeg: -p.rLowerLeg,
    };
    const scale = H * 0.9;
    const render = (pose: Pose, x: number) =>
      renderPerson(buildParts(body, buildSkeleton(body, pose, { x, y: H * 0.18 }, scale), scale), look, W, H);
    const a = render(p, W / 2 - 3.3);
    const b = render(mirrored, W / 2 + 3.3);
    const flipped = warpIuv(
      { width: W, height: H, parts: a.iuvI, u: a.iuvU, v: a.iuvV },
      { inverse: [-1, 0, W, 0, 1, 0], flip: true },
    );
    let union = 0;
    let agree = 0;
    let uvOk = 0;
    for (let i = 0; i < W * H; i++) {
      if (flipped.parts[i] === 0 && b.iuvI[i] === 0) continue;
      union++;
      if (flipped.parts[i] !== b.iuvI[i]) continue;
      agree++;
      if (Math.abs(flipped.u[i]! - b.iuvU[i]!) < 1e-4 && Math.abs(flipped.v[i]! - b.iuvV[i]!) < 1e-4) uvOk++;
    }
    expect(union).toBeGreaterThan(300);
    // Only pixels whose centre lies on a shape's boundary (float rounding) may differ.
    expect(agree / union).toBeGreaterThan(0.99);
    expect(uvOk / agree).toBeGreaterThan(0.99);
    // The left/right parts really were swapped (the right upper arm, 18, becomes the left one, 17).
    expect(a.iuvI.includes(18) && flipped.parts.includes(17) && b.iuvI.includes(17)).toBe(true);
    // Without the V mirror the charts would disagree.
    const wrong = flipped.v.filter(
      (v, i) => flipped.parts[i] === b.iuvI[i] && b.iuvI[i]! > 0 && Math.abs(1 - v - b.iuvV[i]!) < 1e-4,
    ).length;
    expect(wrong / agree).toBeLessThan(0.2);
  });

  it('renders of a hand-made part map: parula on black, raw I x 3, (I, U*255, V*255)', () => {
    const maps = { width: 2, height: 2, parts: [0, 24, 12, 1], u: [0.7, 1, 0.5, 1.3], v: [0.7, 0, 0.25, -0.2] };
    const r = renderDensePose(maps);
    for (const img of [r.parula, r.raw, r.iuv]) expect([img.width, img.height, img.data.length]).toEqual([2, 2, 12]);
    expect([...r.parula.data]).toEqual([0, 0, 0, 249, 251, 14, ...parula(0.5), ...parula(1 / 24)]);
    expect([...r.raw.data]).toEqual([0, 0, 0, 24, 24, 24, 12, 12, 12, 1, 1, 1]);
    // Background black whatever its U/V; U/V clamped to [0, 1].
    expect([...r.iuv.data]).toEqual([0, 0, 0, 24, 255, 0, 12, 128, 64, 1, 255, 0]);
    expect(() => renderDensePose({ ...maps, parts: [0, 25, 0, 0] })).toThrow(
      /part index 25 at pixel 1 is outside 0\.\.24/,
    );
  });

  it('a tiny run at 64x48 lowers the loss in 20 steps; checkpoints resume bit-for-bit', async () => {
    const H = 64;
    const W = 48;
    const examples = [0, 1, 2, 3].map((s) => syntheticDensePoseExample(100 + s, H, W));
    expect(examples[0]!.parts.some((p) => p > 0)).toBe(true);
    const trainer = new DensePoseTrainer({ seed: 1, lr: 2e-3 });
    const totals: number[] = [];
    for (let s = 0; s < 20; s++) {
      const losses = trainer.step([examples[(2 * s) % 4]!, examples[(2 * s + 1) % 4]!]);
      totals.push((await losses.data())[0]!);
      losses.dispose();
    }
    const head = (totals[0]! + totals[1]! + totals[2]!) / 3;
    const tail = (totals[17]! + totals[18]! + totals[19]!) / 3;
    expect(tail).toBeLessThan(0.75 * head);
    const dir = join(tmp, 'ckpt');
    await trainer.save(dir);
    const batch = [examples[0]!, examples[3]!];
    const next = await trainer.step(batch).data();
    const resumed = new DensePoseTrainer({ seed: 99, lr: 2e-3 });
    await resumed.load(dir);
    expect(resumed.stepCount).toBe(20);
    expect([...(await resumed.step(batch).data())]).toEqual([...next]);
  });
});
