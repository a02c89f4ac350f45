import * as T from '@leffa-webgpu/core';
import { flowToGrid, type LeffaModel, leffaSample, warpByFlow } from '@leffa-webgpu/models';
import { type LeffaBatch, type LeffaExample, tensorToImages, toBatch } from '@leffa-webgpu/data';
import { flowEndPointError, l1, psnr, ssim } from './metrics.js';

/** Seeds of held-out examples: far from any training pool. */
export const HELD_OUT_SEED = 900_000_000;

/** Generated vs ground-truth target, averaged over examples (ImageScores), and the model's other figures. */
export interface EvalResult extends ImageScores {
  /** Flow end-point error (reference pixels) of each attn1 layer's flow at the probe timestep. */
  flowEpe: { layer: string; height: number; width: number; epe: number }[];
  /** Mean over layers. */
  meanFlowEpe: number;
  /** Each example's image metrics (same order as the examples). */
  perExample: ImageScores[];
  /**
   * The reference warped by the finest layer's attention flow, scored as the generated images are (mean over
   * examples): what the attention's correspondence alone carries to each pixel. For a try-on only the figures
   * inside the mask mean something (outside it the warp samples the garment photo, not the person).
   */
  warped: ImageScores;
  /**
   * The generative UNet's noise-prediction MSE on the held-out targets noised at a few timesteps (1 for a model
   * that predicts nothing). Sampling starts from pure noise, so an error well above about 0.02 at t = 999 leaves
   * visible noise in the samples however good the model is at small t. `mseWithoutReference` is the same error
   * with an all-zero reference latent (classifier-free guidance's unconditional branch) and the same noise: where
   * it is no larger than `mse`, the generative UNet does not use the garment (or source person) at all.
   */
  noiseError: NoiseError[];
}

export interface NoiseError {
  timestep: number;
  mse: number;
  mseWithoutReference: number;
}

/** Timesteps at which `evaluateLeffa` measures the noise-prediction error. */
export const NOISE_ERROR_TIMESTEPS = [50, 200, 500, 800, 999] as const;

export interface EvalImages {
  generated: Uint8Array[];
  /** The reference warped by the finest layer's flow. */
  warped: Uint8Array[];
}

export interface EvalOptions {
  steps?: number;
  /** Default 'ddpm': Leffa's released pipeline samples with diffusers' DDPMScheduler (ancestral steps). */
  sampler?: 'ddpm' | 'ddim';
  guidanceScale?: number;
  /** Timestep at which the flows are probed (Leffa's loss acts below 500). */
  probeTimestep?: number;
  seed?: number;
  /** Called after every sampling step; `evaluateLeffaSeeds` counts the steps of all its seeds. */
  onStep?: (step: number, total: number) => void;
}

/**
 * The batch's target latent, reference latent and the generative UNet's other inputs at latent size (the
 * encoder's means: no noise drawn). Call inside a tidy scope.
 */
function targetLatents(model: LeffaModel, batch: LeffaBatch) {
  const x0 = model.encodeImage(batch.source, { sample: false });
  const size = x0.shape.slice(2) as [number, number];
  return {
    x0,
    reference: model.encodeImage(batch.reference, { sample: false }),
    inputs: {
      maskLatent: T.interpolate(batch.mask, { size, mode: 'nearest' }),
      maskedLatent: model.encodeImage(T.mul(batch.source, T.sub(1, batch.mask)), { sample: false }),
      densepose: T.interpolate(batch.densepose, { size, mode: 'nearest' }),
    },
  };
}

/**
 * Attention flows of the generative UNet at one timestep: the noisy latent of the ground truth at t, the
 * reference features, and the flow reports of every attn1 layer at >= 1/32 of the image.
 */
function probeFlows(model: LeffaModel, batch: LeffaBatch, t: number, generator: T.Generator) {
  return T.noGrad(() =>
    T.tidy(() => {
      const { x0, reference, inputs } = targetLatents(model, batch);
      const noisy = model.scheduler.addNoise(x0, T.randn([...x0.shape], { generator }), t);
      const out = model.predictNoise({ ...inputs, noisyLatent: noisy }, t, model.referenceFeatures(reference, t), {
        kind: 'flow',
        tau: 2,
        minFraction: 1 / 32,
        imageHeight: batch.height,
      });
      return out.reports;
    }),
  );
}

/**
 * Noise-prediction MSE of the generative UNet on the batch's targets noised at each timestep, with the reference
 * and with an all-zero reference latent (same noise).
 */
export async function noisePredictionError(
  model: LeffaModel,
  batch: LeffaBatch,
  timesteps: readonly number[],
  generator: T.Generator,
): Promise<NoiseError[]> {
  const losses = T.noGrad(() =>
    T.tidy(() => {
      const { x0, reference, inputs } = targetLatents(model, batch);
      const blank = T.zerosLike(reference);
      return timesteps.map((t) => {
        const noise = T.randn([...x0.shape], { generator });
        const noisy = model.scheduler.addNoise(x0, noise, t);
        const error = (ref: T.Tensor) =>
          T.keep(
            T.mseLoss(
              model.predictNoise({ ...inputs, noisyLatent: noisy }, t, model.referenceFeatures(ref, t)).sample,
              noise,
            ),
          );
        return [error(reference), error(blank)] as const;
      });
    }),
  );
  const values = await Promise.all(losses.flat().map((l) => l.item()));
  T.dispose(losses.flat());
  return timesteps.map((timestep, i) => ({ timestep, mse: values[2 * i]!, mseWithoutReference: values[2 * i + 1]! }));
}

/**
 * L1, PSNR and SSIM of one image, or their means over examples: over the whole image; inside the example's mask
 * alone (`mask*`: the region the model regenerates, e.g. the garment of a try-on, where the rest of the image is
 * there to be copied); and inside the mask where the reference shows the same point (`shown*`: where the exact flow
 * is defined, so the visible garment of a try-on without the arms, skin and background its mask also covers, and
 * for a pose transfer the person's points the source shows; NaN for examples without an exact flow).
 */
export interface ImageScores {
  l1: number;
  psnr: number;
  ssim: number;
  maskL1: number;
  maskPsnr: number;
  maskSsim: number;
  shownL1: number;
  shownPsnr: number;
  shownSsim: number;
}

export const IMAGE_SCORES = [
  'l1',
  'psnr',
  'ssim',
  'maskL1',
  'maskPsnr',
  'maskSsim',
  'shownL1',
  'shownPsnr',
  'shownSsim',
] as const;

/** Each image scored against its example's ground-truth target. */
function scoreImages(images: Uint8Array[], examples: LeffaExample[], width: number, height: number): ImageScores[] {
  return examples.map((e, i) => {
    const shown = e.flowValid ? e.mask.map((m, j) => (m && e.flowValid![j] ? 1 : 0)) : null;
    return {
      l1: l1(images[i]!, e.source),
      psnr: psnr(images[i]!, e.source),
      ssim: ssim(images[i]!, e.source, width, height),
      maskL1: l1(images[i]!, e.source, e.mask),
      maskPsnr: psnr(images[i]!, e.source, e.mask),
      maskSsim: ssim(images[i]!, e.source, width, height, e.mask),
      shownL1: shown ? l1(images[i]!, e.source, shown) : NaN,
      shownPsnr: shown ? psnr(images[i]!, e.source, shown) : NaN,
      shownSsim: shown ? ssim(images[i]!, e.source, width, height, shown) : NaN,
    };
  });
}

function meanScores(scores: ImageScores[]): ImageScores {
  const mean = (key: keyof ImageScores) => scores.reduce((a, m) => a + m[key], 0) / scores.length;
  return Object.fromEntries(IMAGE_SCORES.map((key) => [key, mean(key)])) as unknown as ImageScores;
}

/**
 * Runs the model on held-out examples: try-on / pose-transfer generation compared with the ground truth,
 * and the attention flow of every Leffa layer compared with the exact ground-truth flow.
 */
export async function evaluateLeffa(
  model: LeffaModel,
  examples: LeffaExample[],
  options: EvalOptions = {},
): Promise<{ metrics: EvalResult; images: EvalImages }> {
  const batch = toBatch(examples);
  const { height, width } = batch;
  const generator = new T.Generator(options.seed ?? 1234);
  const generatedT = await leffaSample(
    model,
    { image: batch.source, reference: batch.reference, mask: batch.mask, densepose: batch.densepose },
    {
      steps: options.steps ?? 20,
      sampler: options.sampler ?? 'ddpm',
      guidanceScale: options.guidanceScale ?? 2.5,
      refAcceleration: true,
      generator,
      ...(options.onStep ? { onStep: options.onStep } : {}),
    },
  );
  const generated = await tensorToImages(generatedT);
  generatedT.dispose();

  const reports = probeFlows(model, batch, options.probeTimestep ?? 250, generator);
  const flows = await Promise.all(reports.map((r) => r.value.data()));
  const finest = reports.reduce((a, b) => (b.height > a.height ? b : a), reports[0]!);
  const warpedT = T.noGrad(() => warpByFlow(batch.reference, finest));
  const warped = await tensorToImages(warpedT);
  warpedT.dispose();
  // After the sampling and the probe, so their noise (and so every figure above) is what it was without it.
  const noiseError = await noisePredictionError(model, batch, NOISE_ERROR_TIMESTEPS, generator);

  const flowEpe = reports.map((r, k) => {
    const per = examples.map((e, b) => {
      if (!e.flow || !e.flowValid) return NaN;
      const n = r.height * r.width * 2;
      return flowEndPointError(
        flows[k]!.subarray(b * n, (b + 1) * n),
        r.height,
        r.width,
        e.flow,
        e.flowValid,
        height,
        width,
      );
    });
    const ok = per.filter(Number.isFinite);
    // Folder datasets carry no ground-truth flow: their EPE is NaN (null in JSON), not a misleading 0.
    return {
      layer: r.layer,
      height: r.height,
      width: r.width,
      epe: ok.length ? ok.reduce((a, v) => a + v, 0) / ok.length : NaN,
    };
  });
  T.dispose([reports, batch]);

  const perExample = scoreImages(generated, examples, width, height);
  const metrics: EvalResult = {
    ...meanScores(perExample),
    warped: meanScores(scoreImages(warped, examples, width, height)),
    flowEpe,
    meanFlowEpe: flowEpe.reduce((a, f) => a + f.epe, 0) / Math.max(flowEpe.length, 1),
    perExample,
    noiseError,
  };
  return { metrics, images: { generated, warped } };
}

/** Mean and spread of one metric. */
export interface MetricSummary {
  mean: number;
  /** Standard deviation of the per-seed means (how much the noise seed alone moves the figure). */
  seedStd: number;
  /** Standard deviation over examples of each example's mean over seeds (how much the people differ). */
  exampleStd: number;
  min: number;
  max: number;
}

export interface SeedAveragedEval {
  seeds: number[];
  examples: number;
  l1: MetricSummary;
  psnr: MetricSummary;
  ssim: MetricSummary;
  /** The same inside the mask (ImageScores). */
  maskL1: MetricSummary;
  maskPsnr: MetricSummary;
  maskSsim: MetricSummary;
  /** The same where the reference shows the point (ImageScores). */
  shownL1: MetricSummary;
  shownPsnr: MetricSummary;
  shownSsim: MetricSummary;
  /**
   * The flow-warped reference's scores (EvalResult.warped) over the seeds: min and max of the seeds' means, no
   * example spread (NaN), as for the flow EPE.
   */
  warped: Record<keyof ImageScores, MetricSummary>;
  /** Flow EPE (mean over layers); examples without a ground-truth flow are left out (NaN when none has one). */
  meanFlowEpe: MetricSummary;
  /** The noise-prediction MSE at each of NOISE_ERROR_TIMESTEPS (with and without the reference), mean over seeds. */
  noiseError: NoiseError[];
  /** The VAE's own reconstruction of the targets: the ceiling of every image metric through this VAE. */
  vaeCeiling: ImageScores;
  /**
   * The reference warped by the exact flow (no model), at full resolution and averaged over the cells of the finest
   * attention layer: what a perfect correspondence would carry at either resolution (`exactWarp`). Null when an
   * example has no exact flow or the layer's cells do not tile the image.
   */
  exactWarp: { full: ImageScores; finestLayer: ImageScores } | null;
  perSeed: EvalResult[];
}

/**
 * The targets encoded (posterior mean) and decoded by the model's VAE, scored against themselves: what a UNet
 * that predicted every latent exactly would score, so a generated image's figures read against it.
 */
export async function vaeCeiling(model: LeffaModel, examples: LeffaExample[]): Promise<ImageScores> {
  const batch = toBatch(examples);
  const { width, height } = batch;
  const reconstructedT = T.noGrad(() =>
    T.tidy(() => model.decodeLatent(model.encodeImage(batch.source, { sample: false }))),
  );
  const reconstructed = await tensorToImages(reconstructedT);
  T.dispose([reconstructedT, batch]);
  return meanScores(scoreImages(reconstructed, examples, width, height));
}

/**
 * The reference warped by the exact flow (see SeedAveragedEval.exactWarp); `cells` is the finest attention layer's
 * height x width, whose flow the model's warp upsamples (as `flowToGrid`).
 */
export async function exactWarpScores(
  examples: LeffaExample[],
  cells: { height: number; width: number },
): Promise<SeedAveragedEval['exactWarp']> {
  if (examples.some((e) => !e.flow || !e.flowValid)) return null;
  const batch = toBatch(examples, { flow: true });
  const { width, height } = batch;
  const [kh, kw] = [height / cells.height, width / cells.width];
  if (!Number.isInteger(kh) || !Number.isInteger(kw)) {
    T.dispose(batch);
    return null;
  }
  const { grid, valid } = batch.flow!;
  const warp = (g: T.Tensor) =>
    T.gridSample(batch.reference, g, { mode: 'bilinear', paddingMode: 'zeros', alignCorners: false });
  const [fullT, finestT] = T.noGrad(() =>
    T.tidy(() => {
      // Each cell's mean over the pixels where the flow is defined, as a layer's [B, cells, 2] flow, upsampled by
      // the model's own flowToGrid.
      const pool = (x: T.Tensor) => T.avgPool2d(T.permute(x, [0, 3, 1, 2]), { kernelSize: [kh, kw] });
      const defined = T.gt(valid, 0);
      const cellFlow = T.div(pool(T.mul(grid, defined)), T.maximum(pool(defined), 1e-6));
      const flow = T.reshape(T.permute(cellFlow, [0, 2, 3, 1]), [examples.length, cells.height * cells.width, 2]);
      return [warp(grid), warp(flowToGrid(flow, cells.height, cells.width, height, width))];
    }),
  );
  const [full, finest] = [await tensorToImages(fullT!), await tensorToImages(finestT!)];
  T.dispose([fullT!, finestT!, batch]);
  return {
    full: meanScores(scoreImages(full, examples, width, height)),
    finestLayer: meanScores(scoreImages(finest, examples, width, height)),
  };
}

const average = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / xs.length;
const stdOf = (xs: number[]) =>
  xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, v) => a + (v - average(xs)) ** 2, 0) / (xs.length - 1));

function summarise(perSeed: number[], perExample: number[], all: number[]): MetricSummary {
  return {
    mean: average(perSeed),
    seedStd: stdOf(perSeed),
    exampleStd: stdOf(perExample),
    min: Math.min(...all),
    max: Math.max(...all),
  };
}

/**
 * `evaluateLeffa` repeated over several noise seeds (sampling noise and the flow probe's noise), on the same
 * held-out examples: every figure is a mean over seeds x examples with its spread, so no single lucky seed
 * can stand for the model. Images are those of each seed, in seed order.
 */
export async function evaluateLeffaSeeds(
  model: LeffaModel,
  examples: LeffaExample[],
  options: Omit<EvalOptions, 'seed'> & { seeds: readonly number[] },
): Promise<{ summary: SeedAveragedEval; images: EvalImages[] }> {
  if (options.seeds.length === 0) throw new Error('evaluateLeffaSeeds: give at least one noise seed');
  if (examples.length === 0) throw new Error('evaluateLeffaSeeds: no examples');
  const perSeed: EvalResult[] = [];
  const images: EvalImages[] = [];
  const steps = options.steps ?? 20;
  const onStep = options.onStep;
  for (const [k, seed] of options.seeds.entries()) {
    const { metrics, images: im } = await evaluateLeffa(model, examples, {
      ...options,
      seed,
      ...(onStep ? { onStep: (s: number) => onStep(k * steps + s, options.seeds.length * steps) } : {}),
    });
    perSeed.push(metrics);
    images.push(im);
  }
  const image = (key: keyof ImageScores) =>
    summarise(
      perSeed.map((m) => m[key]),
      examples.map((_, i) => average(perSeed.map((m) => m.perExample[i]![key]))),
      perSeed.flatMap((m) => m.perExample.map((e) => e[key])),
    );
  const epe = perSeed.map((m) => m.meanFlowEpe);
  const overSeeds = (values: number[]): MetricSummary => ({
    mean: average(values),
    seedStd: stdOf(values),
    exampleStd: NaN,
    min: Math.min(...values),
    max: Math.max(...values),
  });
  const ceiling = await vaeCeiling(model, examples);
  const finest = perSeed[0]!.flowEpe.reduce((a, f) => (f.height > a.height ? f : a), perSeed[0]!.flowEpe[0]!);
  const exactWarp = finest ? await exactWarpScores(examples, finest) : null;
  return {
    summary: {
      seeds: [...options.seeds],
      examples: examples.length,
      l1: image('l1'),
      psnr: image('psnr'),
      ssim: image('ssim'),
      maskL1: image('maskL1'),
      maskPsnr: image('maskPsnr'),
      maskSsim: image('maskSsim'),
      shownL1: image('shownL1'),
      shownPsnr: image('shownPsnr'),
      shownSsim: image('shownSsim'),
      warped: Object.fromEntries(
        IMAGE_SCORES.map((key) => [key, overSeeds(perSeed.map((m) => m.warped[key]))]),
      ) as Record<keyof ImageScores, MetricSummary>,
      meanFlowEpe: overSeeds(epe),
      noiseError: perSeed[0]!.noiseError.map(({ timestep }, k) => ({
        timestep,
        mse: average(perSeed.map((m) => m.noiseError[k]!.mse)),
        mseWithoutReference: average(perSeed.map((m) => m.noiseError[k]!.mseWithoutReference)),
      })),
      vaeCeiling: ceiling,
      exactWarp,
      perSeed,
    },
    images,
  };
}

/** One line per metric: mean +- seed std (example std) [min, max]. */
export function formatSeedAveraged(s: SeedAveragedEval): string {
  const row = (name: string, m: MetricSummary, digits: number) =>
    `| ${name} | ${m.mean.toFixed(digits)} | ${m.seedStd.toFixed(digits)} | ${Number.isFinite(m.exampleStd) ? m.exampleStd.toFixed(digits) : '-'} | ${m.min.toFixed(digits)} | ${m.max.toFixed(digits)} |`;
  return [
    `${s.examples} held-out examples x ${s.seeds.length} noise seeds (${s.seeds.join(', ')})`,
    '| metric | mean | std over seeds | std over examples | min | max |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    row('SSIM', s.ssim, 3),
    row('PSNR (dB)', s.psnr, 2),
    row('L1', s.l1, 4),
    row('SSIM inside the mask', s.maskSsim, 3),
    row('PSNR inside the mask (dB)', s.maskPsnr, 2),
    row('L1 inside the mask', s.maskL1, 4),
    row('SSIM where the reference shows the point', s.shownSsim, 3),
    row('PSNR where the reference shows the point (dB)', s.shownPsnr, 2),
    row('L1 where the reference shows the point', s.shownL1, 4),
    row('flow EPE (px, mean of seeds)', s.meanFlowEpe, 2),
    row('the flow-warped reference: SSIM inside the mask', s.warped.maskSsim, 3),
    row('the flow-warped reference: PSNR inside the mask (dB)', s.warped.maskPsnr, 2),
    row('the flow-warped reference: SSIM where the reference shows the point', s.warped.shownSsim, 3),
    row('the flow-warped reference: PSNR where the reference shows the point (dB)', s.warped.shownPsnr, 2),
    `noise-prediction MSE at t = ${s.noiseError.map((e) => e.timestep).join(' / ')}: ${s.noiseError.map((e) => e.mse.toFixed(4)).join(' / ')} (1 predicts nothing); with a blank reference: ${s.noiseError.map((e) => e.mseWithoutReference.toFixed(4)).join(' / ')} (${s.noiseError.map((e) => `${e.mseWithoutReference >= e.mse ? '+' : ''}${((100 * (e.mseWithoutReference - e.mse)) / e.mse).toFixed(1)}%`).join(' / ')}; near 0: the reference is not used)`,
    `the VAE's reconstruction of the targets (the ceiling through this VAE): SSIM ${s.vaeCeiling.ssim.toFixed(3)}, PSNR ${s.vaeCeiling.psnr.toFixed(2)} dB, L1 ${s.vaeCeiling.l1.toFixed(4)}; inside the mask SSIM ${s.vaeCeiling.maskSsim.toFixed(3)}, PSNR ${s.vaeCeiling.maskPsnr.toFixed(2)} dB, L1 ${s.vaeCeiling.maskL1.toFixed(4)}; where the reference shows the point SSIM ${s.vaeCeiling.shownSsim.toFixed(3)}, PSNR ${s.vaeCeiling.shownPsnr.toFixed(2)} dB`,
    ...(s.exactWarp
      ? [
          `the reference warped by the exact flow (no model), where the reference shows the point: SSIM ${s.exactWarp.full.shownSsim.toFixed(3)}, PSNR ${s.exactWarp.full.shownPsnr.toFixed(2)} dB; averaged to the finest attention layer's cells: SSIM ${s.exactWarp.finestLayer.shownSsim.toFixed(3)}, PSNR ${s.exactWarp.finestLayer.shownPsnr.toFixed(2)} dB`,
        ]
      : []),
  ].join('\n');
}
