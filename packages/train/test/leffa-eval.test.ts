import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS, LeffaModel } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { SyntheticLeffaSource, tensorToImages, toBatch } from '@leffa-webgpu/data';
import {
  evaluateLeffa,
  evaluateLeffaSeeds,
  exactWarpScores,
  formatSeedAveraged,
  NOISE_ERROR_TIMESTEPS,
  noisePredictionError,
  ssim,
  vaeCeiling,
} from '../src/index.js';
import { leffaConfigFromExtra, resolveCheckpoint } from '@leffa-webgpu/pipelines';
import { evaluate } from '../src/cli/generate.js';

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
    // Inside the mask (the garment region of a try-on): its own figures, computed per image like the others.
    const perSeedMaskSsim = summary.perSeed.map((m) => m.perExample.reduce((a, e) => a + e.maskSsim, 0) / 3);
    expect(summary.maskSsim.mean).toBeCloseTo((perSeedMaskSsim[0]! + perSeedMaskSsim[1]!) / 2, 12);
    expect(summary.maskSsim.mean).not.toBe(summary.ssim.mean);
    expect(formatSeedAveraged(summary)).toMatch(/\| SSIM inside the mask \| \d\.\d{3} \|/);
    // The flow-warped reference scored like the samples: each seed's figure from that seed's warped images.
    for (const [k, m] of summary.perSeed.entries()) {
      const own = examples.map((e, i) => ssim(images[k]!.warped[i]!, e.source, 24, 32, e.mask));
      expect(m.warped.maskSsim).toBeCloseTo(own.reduce((a, v) => a + v, 0) / 3, 12);
    }
    expect(summary.warped.maskSsim.mean).toBeCloseTo(
      (summary.perSeed[0]!.warped.maskSsim + summary.perSeed[1]!.warped.maskSsim) / 2,
      12,
    );
    expect(summary.warped.maskSsim.mean).not.toBe(summary.maskSsim.mean);
    // Where the reference shows the point: the mask narrowed to where the exact flow is defined.
    for (const [k, m] of summary.perSeed.entries()) {
      const own = examples.map((e, i) => {
        const shown = e.mask.map((v, j) => (v && e.flowValid![j] ? 1 : 0));
        return ssim(images[k]!.generated[i]!, e.source, 24, 32, shown);
      });
      expect(m.shownSsim).toBeCloseTo(own.reduce((a, v) => a + v, 0) / 3, 12);
    }
    expect(summary.shownSsim.mean).not.toBe(summary.maskSsim.mean);
    expect(formatSeedAveraged(summary)).toMatch(/\| SSIM where the reference shows the point \| -?\d\.\d{3} \|/);
    expect(formatSeedAveraged(summary)).toMatch(/\| the flow-warped reference: SSIM inside the mask \| -?\d\.\d{3} \|/);
    expect(formatSeedAveraged(summary)).toMatch(
      /inside the mask SSIM \d\.\d{3}, PSNR \d+\.\d{2} dB, L1 \d\.\d{4}; where the reference shows the point SSIM \d\.\d{3}, PSNR \d+\.\d{2} dB$/m,
    );
    for (const m of [
      summary.ssim,
      summary.psnr,
      summary.l1,
      summary.maskSsim,
      summary.maskPsnr,
      summary.maskL1,
      summary.meanFlowEpe,
      summary.shownSsim,
      summary.shownPsnr,
      summary.shownL1,
      summary.warped.maskSsim,
      summary.warped.maskPsnr,
    ]) {
      expect(m.min).toBeLessThanOrEqual(m.mean);
      expect(m.max).toBeGreaterThanOrEqual(m.mean);
    }
    // Seed 5 alone reproduces the seed-5 entry exactly.
    const again = await evaluateLeffa(model, examples, { steps: 2, seed: 5 });
    expect(again.metrics.ssim).toBe(summary.perSeed[1]!.ssim);
    // Examples without an exact flow (folder datasets) have no such region: NaN there, every other figure unchanged.
    const noFlow = examples.map(({ flow, flowValid, ...e }) => e);
    const plain = await evaluateLeffa(model, noFlow, { steps: 2, seed: 5 });
    expect(plain.metrics.shownSsim).toBeNaN();
    expect(plain.metrics.maskSsim).toBe(summary.perSeed[1]!.maskSsim);
    // The exact flow's warp (no model): the full-resolution one is gridSample by the batch's flow grid, scored alike;
    // averaged over the finest layer's cells it blurs the correspondence, so it scores lower; none without a flow.
    const exact = summary.exactWarp!;
    const batch = toBatch(examples, { flow: true });
    const warpedT = T.gridSample(batch.reference, batch.flow!.grid, {
      mode: 'bilinear',
      paddingMode: 'zeros',
      alignCorners: false,
    });
    const warped = await tensorToImages(warpedT);
    T.dispose([warpedT, batch]);
    const own = examples.map((e, i) =>
      ssim(
        warped[i]!,
        e.source,
        24,
        32,
        e.mask.map((v, j) => (v && e.flowValid![j] ? 1 : 0)),
      ),
    );
    expect(exact.full.shownSsim).toBeCloseTo(own.reduce((a, v) => a + v, 0) / 3, 12);
    expect(exact.finestLayer.shownSsim).toBeLessThan(exact.full.shownSsim);
    expect(formatSeedAveraged(summary)).toMatch(
      /exact flow \(no model\), where the reference shows the point: SSIM \d\.\d{3}/,
    );
    expect(await exactWarpScores(noFlow, { height: 8, width: 6 })).toBeNull();
    expect(formatSeedAveraged(summary)).toMatch(/3 held-out examples x 2 noise seeds \(0, 5\)/);
    // The VAE's ceiling is the same for every seed (no noise): reported once.
    expect(summary.vaeCeiling).toEqual(await vaeCeiling(model, examples));
    expect(formatSeedAveraged(summary)).toMatch(/ceiling through this VAE\): SSIM \d\.\d{3}/);
    // The blank-reference error and its change against the error with the reference, per timestep.
    expect(formatSeedAveraged(summary)).toMatch(
      /with a blank reference: \d\.\d{4}( \/ \d\.\d{4}){4} \((\+|-)\d+\.\d%( \/ (\+|-)\d+\.\d%){4}; near 0/,
    );
    await expect(evaluateLeffaSeeds(model, examples, { steps: 2, seeds: [] })).rejects.toThrow(
      /at least one noise seed/,
    );
  });
});

describe("the VAE's ceiling", () => {
  it("scores the VAE's reconstruction of the targets: near 0 untrained, well above the samples for the shipped VAE", async () => {
    const examples = new SyntheticLeffaSource('tryon', 128, 96, 900_000_000).take(4);
    T.manualSeed(3);
    const untrained = new LeffaModel(LEFFA_CONFIGS.tiny);
    const random = await vaeCeiling(untrained, examples);
    T.dispose(untrained.parameters());
    const opened = await T.openCheckpoint(resolveCheckpoint('shipped:leffa-tiny-tryon'));
    const shipped = new LeffaModel(leffaConfigFromExtra(opened.extra));
    await opened.load({ model: shipped });
    const trained = await vaeCeiling(shipped, examples);
    T.dispose(shipped.parameters());
    // An untrained decoder draws nothing of the person; the shipped VAE (about 20 dB on held-out people) does.
    expect(random.ssim).toBeLessThan(0.3);
    expect(trained.ssim).toBeGreaterThan(0.6);
    expect(trained.psnr).toBeGreaterThan(random.psnr + 5);
    expect(trained.l1).toBeLessThan(random.l1);
  });
});

describe('noise-prediction error', () => {
  it('is the MSE against the noise actually added: ~1 for a zero prediction, ~0 at t = 999 for the noisy input', async () => {
    T.manualSeed(4);
    const model = new LeffaModel(LEFFA_CONFIGS.tiny);
    const batch = toBatch(new SyntheticLeffaSource('tryon', 64, 48, 901).take(4));
    const predict = (f: (noisy: T.Tensor) => T.Tensor) =>
      Object.assign(model, {
        predictNoise: (inputs: { noisyLatent: T.Tensor }) => ({ sample: f(inputs.noisyLatent), reports: [] }),
      });
    predict((noisy) => T.mul(noisy, 0));
    const zero = await noisePredictionError(model, batch, NOISE_ERROR_TIMESTEPS, new T.Generator(1));
    expect(zero.map((e) => e.timestep)).toEqual([...NOISE_ERROR_TIMESTEPS]);
    // 4 x 4 x 8 x 6 standard normal values: their mean square is 1 within a few tenths.
    for (const e of zero) {
      expect(e.mse).toBeGreaterThan(0.7);
      expect(e.mse).toBeLessThan(1.3);
    }
    // Returning the noisy latent itself: right at t = 999 (almost all noise), more wrong the smaller t.
    predict((noisy) => noisy);
    const identity = await noisePredictionError(model, batch, NOISE_ERROR_TIMESTEPS, new T.Generator(1));
    expect(identity.at(-1)!.mse).toBeLessThan(0.02);
    for (let k = 1; k < identity.length; k++) expect(identity[k]!.mse).toBeLessThan(identity[k - 1]!.mse);
    // These predictions ignore the reference: a blank one scores exactly the same (same noise).
    for (const e of [...zero, ...identity]) expect(e.mseWithoutReference).toBe(e.mse);
    T.dispose(batch);
  });

  it('measures the error again with a blank reference, which changes the prediction of a model that reads it', async () => {
    T.manualSeed(5);
    const model = new LeffaModel(LEFFA_CONFIGS.tiny);
    const batch = toBatch(new SyntheticLeffaSource('tryon', 64, 48, 902).take(2));
    const errors = await noisePredictionError(model, batch, [500], new T.Generator(1));
    const [e] = errors;
    expect(Number.isFinite(e!.mseWithoutReference)).toBe(true);
    expect(Math.abs(e!.mseWithoutReference - e!.mse)).toBeGreaterThan(1e-6);
    T.dispose(batch);
    model.dispose();
  });
});

describe('eval --guidance', () => {
  it('samples at the given guidance scale and records it in metrics.json', async () => {
    const out = mkdtempSync(join(tmpdir(), 'eval-guidance-'));
    try {
      const run = (guidance: number) =>
        evaluate({
          task: 'tryon',
          ckpt: 'shipped:leffa-tiny-tryon',
          examples: 1,
          seeds: [0],
          steps: 2,
          guidance,
          out: join(out, String(guidance)),
        });
      const [plain, guided] = [await run(1), await run(4)];
      // The same noise, another scale: another image. The flows are probed without guidance, so they agree.
      expect(guided.ssim.mean).not.toBe(plain.ssim.mean);
      expect(guided.meanFlowEpe.mean).toBe(plain.meanFlowEpe.mean);
      const written = JSON.parse(readFileSync(join(out, '4', 'metrics.json'), 'utf8'));
      expect(written.guidance).toBe(4);
      expect(written.ssim.mean).toBe(guided.ssim.mean);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
