import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS, LeffaModel } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { SyntheticLeffaSource } from '@leffa-webgpu/data';
import { evaluateLeffa, evaluateLeffaSeeds, formatSeedAveraged } from '../src/index.js';

beforeAll(async () => {
  await T.init();
});

describe('seed-averaged evaluation', () => {
  it('averages over seeds x examples, reports the spread, and repeats exactly per seed', async () => {
    T.manualSeed(3);
    const model = new LeffaModel(LEFFA_CONFIGS.tiny);
    const examples = new SyntheticLeffaSource('tryon', 32, 24, 900).take(3);
    const { summary, images } = await evaluateLeffaSeeds(model, examples, { steps: 2, seeds: [0, 5] });
    expect(summary.seeds).toEqual([0, 5]);
    expect(summary.examples).toBe(3);
    expect(images).toHaveLength(2);
    expect(images[0]!.generated).toHaveLength(3);
    // The mean is the mean of the per-seed means, which are the means of their examples.
    const perSeedSsim = summary.perSeed.map((m) => m.perExample.reduce((a, e) => a + e.ssim, 0) / 3);
    expect(summary.perSeed.map((m) => m.ssim)).toEqual(perSeedSsim.map((v) => expect.closeTo(v, 12)));
    expect(summary.ssim.mean).toBeCloseTo((perSeedSsim[0]! + perSeedSsim[1]!) / 2, 12);
    // Different noise seeds give different images, so the seed spread is not zero; min <= mean <= max.
    expect(summary.ssim.seedStd).toBeGreaterThan(0);
    expect(summary.psnr.exampleStd).toBeGreaterThan(0);
    for (const m of [summary.ssim, summary.psnr, summary.l1, summary.meanFlowEpe]) {
      expect(m.min).toBeLessThanOrEqual(m.mean);
      expect(m.max).toBeGreaterThanOrEqual(m.mean);
    }
    // Seed 5 alone reproduces the seed-5 entry exactly.
    const again = await evaluateLeffa(model, examples, { steps: 2, seed: 5 });
    expect(again.metrics.ssim).toBe(summary.perSeed[1]!.ssim);
    expect(formatSeedAveraged(summary)).toMatch(/3 held-out examples x 2 noise seeds \(0, 5\)/);
    await expect(evaluateLeffaSeeds(model, examples, { steps: 2, seeds: [] })).rejects.toThrow(
      /at least one noise seed/,
    );
  });
});
