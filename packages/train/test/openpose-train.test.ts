import * as T from '@leffa-webgpu/core';
import { MAP_IDX } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { COCO18_FLIP, Rng, poseTargets, randomAffine, syntheticPoseExample, warpKeypoints } from '@leffa-webgpu/data';
import { OpenPoseTrainer } from '../src/index.js';

beforeAll(async () => {
  await T.init();
});

describe('OpenPose training', () => {
  it('builds stride-8 targets: Gaussian peaks at the parts, unit PAF vectors along limbs, background', () => {
    const kp = Array.from({ length: 18 }, () => ({ x: 0, y: 0, visible: false }));
    kp[1] = { x: 35.5, y: 19.5, visible: true }; // neck at grid cell (4, 2)
    kp[2] = { x: 35.5, y: 51.5, visible: true }; // r-shoulder straight below, grid (4, 6)
    const t = poseTargets([kp], 64, 80);
    expect([t.height, t.width]).toEqual([8, 10]);
    const at = (c: number, y: number, x: number) => t.heatmap[c * 80 + y * 10 + x]!;
    expect(at(1, 2, 4)).toBeCloseTo(1, 5);
    expect(at(1, 2, 5)).toBeCloseTo(Math.exp(-64 / 98), 5);
    expect(at(18, 2, 4)).toBeCloseTo(0, 5);
    expect(at(18, 0, 0)).toBe(1);
    // Limb 0 joins parts 2 and 3 (neck -> r-shoulder): PAF channels MAP_IDX[0].
    const [cx, cy] = MAP_IDX[0]!.map((c) => c - 19) as [number, number];
    expect(t.paf[cy * 80 + 4 * 10 + 4]).toBeCloseTo(1, 5);
    expect(t.paf[cx * 80 + 4 * 10 + 4]).toBeCloseTo(0, 5);
    expect(t.paf[cy * 80 + 4 * 10 + 7]).toBe(0);
  });

  it('flips mirror the image and swap left and right keypoints', () => {
    const rng = new Rng(3);
    let t = randomAffine(rng, 96, 128, { maxRotation: 0, scale: [1, 1] });
    while (!t.flip) t = randomAffine(rng, 96, 128, { maxRotation: 0, scale: [1, 1] });
    const kp = Array.from({ length: 18 }, (_, i) => ({ x: 10 + i, y: 50 + i, visible: true }));
    const mirrored = warpKeypoints(kp, 96, 128, t, []);
    const moved = warpKeypoints(kp, 96, 128, t);
    // A pure flip about the centre: x -> width - x, y unchanged.
    for (let i = 0; i < 18; i++) {
      expect(mirrored[i]!.x).toBeCloseTo(96 - kp[i]!.x, 4);
      expect(mirrored[i]!.y).toBeCloseTo(kp[i]!.y, 4);
    }
    // With the COCO pairs, each left part takes its right partner's mirrored position and vice versa.
    for (const [l, r] of COCO18_FLIP) {
      expect(moved[l]).toEqual(mirrored[r]);
      expect(moved[r]).toEqual(mirrored[l]);
    }
    expect(moved[0]).toEqual(mirrored[0]);
  });

  it('a few steps of the small model reduce the loss', async () => {
    const trainer = new OpenPoseTrainer({ seed: 1, lr: 2e-3, augment: false });
    const batch = [0, 1].map((s) => syntheticPoseExample(s, 64, 48));
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const l = trainer.step(batch);
      losses.push(await l.item());
      l.dispose();
    }
    expect(losses[7]!).toBeLessThan(losses[0]!);
  });
});
