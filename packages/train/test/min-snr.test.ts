import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS, NoiseSchedule, SD15_SCHEDULE } from '@leffa-webgpu/models';
import { SyntheticLeffaSource, toBatch } from '@leffa-webgpu/data';
import { beforeAll, describe, expect, it } from 'vitest';
import { LeffaTrainer, minSnrWeights, weightedMse } from '../src/index.js';

beforeAll(async () => {
  await T.init();
});

// Stable Diffusion's scaled-linear schedule written out: betas from linspace(sqrt(b0), sqrt(b1), 1000) squared.
function sdAlphaBar(t: number): number {
  const [s0, s1] = [Math.sqrt(0.00085), Math.sqrt(0.012)];
  let prod = 1;
  for (let i = 0; i <= t; i++) prod *= 1 - (s0 + ((s1 - s0) * i) / 999) ** 2;
  return prod;
}

describe('Min-SNR-gamma weighting (diffusers --snr_gamma)', () => {
  it('weights min(SNR, gamma) / SNR on the SD1.5 schedule: below 1 for the clean steps, 1 for the noisy ones', () => {
    const schedule = new NoiseSchedule(SD15_SCHEDULE);
    const steps = [0, 10, 100, 250, 400, 999];
    const got = minSnrWeights((t) => schedule.alphaBar(t), steps, 5);
    steps.forEach((t, i) => {
      const a = sdAlphaBar(t);
      const snr = a / (1 - a);
      expect(got[i]).toBeCloseTo(Math.min(snr, 5) / snr, 12);
    });
    // SNR(0) is about 1175: weight 5 / 1175; SNR falls below 5 near t = 200 and stays there.
    expect(got[0]).toBeCloseTo(5 / (sdAlphaBar(0) / (1 - sdAlphaBar(0))), 12);
    expect(got[0]).toBeLessThan(0.005);
    expect(got.slice(3)).toEqual([1, 1, 1]);
    expect(() => minSnrWeights((t) => schedule.alphaBar(t), steps, 0)).toThrow(/gamma must be positive/);
  });

  it('weightedMse is the batch mean of per-example squared errors times their weights', async () => {
    const pred = T.tensor([1, 2, 3, 4, 0, 0, 0, 0, 2, 2, 2, 2], [3, 1, 2, 2]);
    const target = T.zeros([3, 1, 2, 2]);
    // Per example: (1 + 4 + 9 + 16) / 4 = 7.5, 0, 4.
    const loss = weightedMse(pred, target, [0.5, 1, 0.25]);
    expect(await loss.item()).toBeCloseTo((7.5 * 0.5 + 0 + 4 * 0.25) / 3, 6);
    expect(() => weightedMse(pred, target, [1, 1])).toThrow(/2 weights for a batch of 3/);
    // Element weights [3, 1; 1, 1] on every example's plane: (3 + 4 + 9 + 16) / 4 = 8, 0, (12 + 12) / 4 = 6.
    const elements = T.tensor([3, 1, 1, 1], [1, 1, 2, 2]);
    const weighted = weightedMse(pred, target, [0.5, 1, 0.25], elements);
    expect(await weighted.item()).toBeCloseTo((8 * 0.5 + 0 + 6 * 0.25) / 3, 6);
  });

  /** The diffusion loss of one trainer step from the same initial weights, timesteps and noise every time. */
  const diffusionLoss = async (options: { snrGamma?: number; maskWeight?: number }) => {
    const batch = toBatch(new SyntheticLeffaSource('tryon', 64, 48, 0).take(2));
    T.manualSeed(7);
    const trainer = new LeffaTrainer({
      config: LEFFA_CONFIGS.tiny,
      seed: 3,
      lr: 1e-4,
      leffa: { mode: 'off' },
      ...options,
    });
    const losses = trainer.step(batch);
    const value = await losses.diffusion.item();
    T.dispose([losses, batch]);
    return value;
  };

  it('the trainer weights its diffusion loss: gamma above every SNR changes nothing, a small gamma lowers it', async () => {
    const plain = await diffusionLoss({ snrGamma: 0 });
    // Same seed, so the same timesteps and noise: with gamma 1e6 every weight is exactly 1.
    expect(await diffusionLoss({ snrGamma: 1e6 })).toBeCloseTo(plain, 5);
    // gamma 1e-3 is below every SNR of the schedule (the smallest, at t = 999, is 0.0047): every weight under 1.
    expect(await diffusionLoss({ snrGamma: 1e-3 })).toBeLessThan(plain * 0.25);
  });

  it('--mask-weight: the diffusion loss counts the inpainting region w times, linearly in w (same noise and weights)', async () => {
    const [a, b, c] = [
      await diffusionLoss({ maskWeight: 1 }),
      await diffusionLoss({ maskWeight: 2 }),
      await diffusionLoss({ maskWeight: 3 }),
    ];
    // Loss(w) = outside + w * inside, both computed before the step's update: equal increments, and positive.
    expect(b - a).toBeGreaterThan(0);
    expect(c - b).toBeCloseTo(b - a, 5);
    // The mask covers a tenth to a fifth of the latent: w = 2 adds less than doubling the whole loss would.
    expect(b).toBeLessThan(2 * a);
    // With Min-SNR weighting too, each example's weighted error is scaled by its SNR weight (all below 1 here).
    expect(await diffusionLoss({ maskWeight: 2, snrGamma: 1e-3 })).toBeLessThan(b * 0.25);
  });
});
