import * as T from '@leffa-webgpu/core';
import { type LeffaConfig, LeffaModel, leffaLoss } from '@leffa-webgpu/models';
import { flowSupervisionLoss, type LeffaBatch, Rng } from '@leffa-webgpu/data';
import { TrainerBase } from '../trainer.js';
import { referenceMassLoss } from './reference-mass.js';
import { type ReadoutWeighting, referenceReadoutLoss } from './reference-readout.js';

export type LeffaLossMode = 'on' | 'off' | 'finetune';

export interface LeffaTrainOptions {
  config: LeffaConfig;
  seed?: number;
  lr?: number;
  betas?: [number, number];
  weightDecay?: number;
  /** Gradient-norm clipping (the paper's 1.0). */
  clipNorm?: number;
  emaDecay?: number;
  /** Probability of replacing the reference latent by zeros, which trains the unconditional branch for CFG. */
  referenceDropout?: number;
  leffa?: {
    /** 'on': from step 0; 'off': baseline; 'finetune': baseline until `finetuneAfter`, then on. */
    mode?: LeffaLossMode;
    finetuneAfter?: number;
    weight?: number;
    tau?: number;
    maxTimestep?: number;
    minFraction?: number;
    /** Default 'smoothL1', as Leffa's released training code. */
    distance?: 'l2' | 'smoothL1';
    /** Default 'released' (Leffa's training code); 'maskArea' averages over the mask only (see leffaLoss). */
    normalization?: 'released' | 'maskArea';
  };
  /**
   * Weight of the supervised attention-flow loss (flowSupervisionLoss; default 0, off). Not Leffa: it gives the
   * experiment a starting point whose attention roughly corresponds. Needs batches with exact flows.
   */
  flowSupervision?: number;
  /**
   * Weight of the reference readout loss (referenceReadoutLoss; default 0, off). Ours, not Leffa: what the
   * generative UNet reads from the reference must hold the garment's latent where it is masked.
   */
  referenceReadout?: number;
  /** How the readout loss weighs its layers (default 'layers': each once); see referenceReadoutLoss. */
  readoutWeighting?: ReadoutWeighting;
  /**
   * Weight of the reference mass loss (referenceMassLoss; default 0, off). Ours, not Leffa: inside the mask, the
   * generative UNet's attention must give the reference keys most of its softmax.
   */
  referenceMass?: number;
  /**
   * Min-SNR-gamma weighting of the diffusion loss (Hang et al. 2023; diffusers' --snr_gamma, 5 recommended):
   * each example's noise error weighted by min(SNR(t), gamma) / SNR(t), which lowers the weight of the nearly
   * clean timesteps and leaves the noisy ones at 1. Absent or 0: the plain mean squared error.
   */
  snrGamma?: number;
  /**
   * Ours: how much each element of the noise error inside the inpainting mask (at latent size) counts against one
   * outside it (default 1: the plain loss). Try-on regenerates only the garment region, a tenth of the image, while
   * the rest is copied from the masked latent; a weight above 1 gives the garment more of the diffusion loss.
   */
  maskWeight?: number;
}

/**
 * Min-SNR-gamma weights of epsilon-prediction losses at `timesteps`: min(SNR, gamma) / SNR with
 * SNR(t) = alpha_bar(t) / (1 - alpha_bar(t)), as diffusers' compute_snr and its training scripts.
 */
export function minSnrWeights(alphaBar: (t: number) => number, timesteps: readonly number[], gamma: number): number[] {
  if (!(gamma > 0)) throw new Error(`minSnrWeights: gamma must be positive, got ${gamma}`);
  return timesteps.map((t) => {
    const a = alphaBar(t);
    const snr = a / (1 - a);
    return Math.min(snr, gamma) / snr;
  });
}

/**
 * The mean over the batch of each example's mean squared error times its weight; with `elementWeights`
 * (broadcast against the prediction), each squared error is first multiplied by its element's weight.
 */
export function weightedMse(
  prediction: T.Tensor,
  target: T.Tensor,
  weights: readonly number[],
  elementWeights?: T.Tensor,
): T.Tensor {
  const b = prediction.shape[0]!;
  if (weights.length !== b)
    throw new Error(`weightedMse: ${weights.length} weights for a batch of ${b} (prediction ${prediction.shape})`);
  const axes = prediction.shape.slice(1).map((_, i) => i + 1);
  const squares = T.square(T.sub(prediction, target));
  const perExample = T.mean(elementWeights ? T.mul(squares, elementWeights) : squares, axes);
  return T.mean(T.mul(perExample, T.tensor(weights, [b])));
}

/** What Leffa training updates, by the model's parameter names: the generative UNet's, then the reference UNet's. */
export function trainableParameters(model: LeffaModel): Map<string, T.Tensor> {
  return new Map(
    (['unet', 'unet_encoder'] as const).flatMap((part) =>
      [...model[part].namedParameters()].map(([name, p]): [string, T.Tensor] => [`${part}.${name}`, p]),
    ),
  );
}

export interface BatchLatents {
  x0: T.Tensor;
  masked: T.Tensor;
  reference: T.Tensor;
}

export interface StepLosses {
  total: T.Tensor;
  diffusion: T.Tensor;
  /** Zero when the Leffa loss is inactive. */
  leffa: T.Tensor;
  /** The supervised flow loss; zero when its weight is 0. */
  flow: T.Tensor;
  /** The reference readout loss; zero when its weight is 0. */
  readout: T.Tensor;
  /** The reference mass loss; zero when its weight is 0. */
  mass: T.Tensor;
}

/**
 * Leffa training (Zhou et al. 2025): L = L_diffusion + lambda * L_leffa, both UNets trained, VAE frozen,
 * AdamW + clipping + EMA, reference dropout for classifier-free guidance. One `step()` records the whole
 * iteration on the GPU; nothing is read back.
 */
export class LeffaTrainer extends TrainerBase {
  protected readonly name = 'LeffaTrainer';
  readonly model: LeffaModel;
  readonly optimizer: T.optim.AdamW;
  readonly ema: T.optim.EMA;
  readonly generator: T.Generator;
  readonly rng: Rng;
  readonly trainable: T.Tensor[];

  constructor(
    readonly options: LeffaTrainOptions,
    model?: LeffaModel,
  ) {
    super();
    const seed = options.seed ?? 0;
    this.generator = new T.Generator(seed);
    this.rng = new Rng(seed ^ 0x5bd1e995);
    this.model = model ?? new LeffaModel(options.config);
    for (const p of this.model.vae.parameters()) p.requiresGrad = false;
    // The EMA keys its shadows by the model's own names, so its file loads into a LeffaModel (export --ema).
    const trainable = trainableParameters(this.model);
    this.trainable = [...trainable.values()];
    this.optimizer = new T.optim.AdamW(this.trainable, {
      lr: options.lr ?? 1e-5,
      betas: options.betas ?? [0.9, 0.999],
      weightDecay: options.weightDecay ?? 1e-2,
    });
    this.ema = new T.optim.EMA(trainable, { decay: options.emaDecay ?? 0.9999 });
  }

  /** Whether the Leffa loss applies at the current step. */
  leffaActive(): boolean {
    const l = this.options.leffa ?? {};
    const mode = l.mode ?? 'on';
    return mode === 'on' || (mode === 'finetune' && this.stepCount >= (l.finetuneAfter ?? 0));
  }

  /**
   * The frozen VAE's latents of a batch: clean target, masked (agnostic) image, reference. Deterministic
   * (posterior means), so a fixed data pool can encode once and reuse them every epoch.
   */
  encodeBatch(batch: LeffaBatch): BatchLatents {
    const m = this.model;
    return T.noGrad(() =>
      T.tidy(() => ({
        x0: m.encodeImage(batch.source, { sample: false }),
        masked: m.encodeImage(T.mul(batch.source, T.sub(1, batch.mask)), { sample: false }),
        reference: m.encodeImage(batch.reference, { sample: false }),
      })),
    );
  }

  /** One optimisation step on a batch (latents encoded here unless given). */
  step(batch: LeffaBatch, given?: BatchLatents): StepLosses {
    const l = this.options.leffa ?? {};
    const m = this.model;
    const b = batch.size;
    const timesteps = Array.from({ length: b }, () => this.rng.int(0, m.scheduler.schedule.numTrainTimesteps));
    const pDrop = this.options.referenceDropout ?? 0.1;
    const keep = Array.from({ length: b }, () => (this.rng.next() < pDrop ? 0 : 1));
    const useLeffa = this.leffaActive();
    const flowWeight = this.options.flowSupervision ?? 0;
    const readoutWeight = this.options.referenceReadout ?? 0;
    const massWeight = this.options.referenceMass ?? 0;
    if (flowWeight > 0 && !batch.flow)
      throw new Error(
        'LeffaTrainer.step: flowSupervision needs batches with exact flows (toBatch(examples, { flow: true }), synthetic data)',
      );

    const losses = T.tidy(() => {
      const gen = { generator: this.generator };
      const latents = given ?? this.encodeBatch(batch);
      const size = latents.x0.shape.slice(2) as [number, number];
      const noise = T.randn([...latents.x0.shape], gen);
      const noisy = m.scheduler.addNoise(latents.x0, noise, timesteps);
      const refLatent = T.mul(latents.reference, T.tensor(keep, [b, 1, 1, 1]));
      const features = m.referenceFeatures(refLatent, timesteps);
      const maskLatent = T.interpolate(batch.mask, { size, mode: 'nearest' });
      const out = m.predictNoise(
        {
          noisyLatent: noisy,
          maskLatent,
          maskedLatent: latents.masked,
          densepose: T.interpolate(batch.densepose, { size, mode: 'nearest' }),
        },
        timesteps,
        features,
        useLeffa || flowWeight > 0 || readoutWeight > 0 || massWeight > 0
          ? {
              kind: 'flow',
              tau: l.tau ?? 2,
              minFraction: l.minFraction ?? 1 / 32,
              imageHeight: batch.height,
              readout: readoutWeight > 0,
              referenceMass: massWeight > 0,
            }
          : undefined,
      );
      const gamma = this.options.snrGamma ?? 0;
      const maskWeight = this.options.maskWeight ?? 1;
      const diffusion =
        gamma > 0 || maskWeight !== 1
          ? weightedMse(
              out.sample,
              noise,
              gamma > 0
                ? minSnrWeights((t) => m.scheduler.schedule.alphaBar(t), timesteps, gamma)
                : timesteps.map(() => 1),
              maskWeight !== 1 ? T.add(T.mul(maskLatent, maskWeight - 1), 1) : undefined,
            )
          : T.mseLoss(out.sample, noise);
      const leffa = useLeffa
        ? leffaLoss(
            {
              flows: out.reports,
              reference: batch.reference,
              target: batch.source,
              mask: batch.lossMask,
              timesteps,
              sampleWeight: keep,
            },
            {
              maxTimestep: l.maxTimestep ?? 500,
              distance: l.distance ?? 'smoothL1',
              normalization: l.normalization ?? 'released',
            },
          )
        : T.zeros([]);
      const flow = flowWeight > 0 ? flowSupervisionLoss(out.reports, batch.flow!, keep) : T.zeros([]);
      const readout =
        readoutWeight > 0
          ? referenceReadoutLoss(out.reports, latents.x0, maskLatent, keep, this.options.readoutWeighting)
          : T.zeros([]);
      const mass = massWeight > 0 ? referenceMassLoss(out.reports, maskLatent, keep) : T.zeros([]);
      const total = T.add(
        T.add(
          T.add(T.add(diffusion, T.mul(leffa, l.weight ?? 1e-3)), T.mul(flow, flowWeight)),
          T.mul(readout, readoutWeight),
        ),
        T.mul(mass, massWeight),
      );
      total.backward();
      T.optim.clipGradNorm(this.trainable, this.options.clipNorm ?? 1);
      this.optimizer.step();
      this.optimizer.zeroGrad();
      this.ema.update();
      return {
        total: total.detach(),
        diffusion: diffusion.detach(),
        leffa: leffa.detach(),
        flow: flow.detach(),
        readout: readout.detach(),
        mass: mass.detach(),
      };
    });
    this.stepCount++;
    return losses;
  }

  protected parts(): T.CheckpointParts {
    return { model: this.model, optimizer: this.optimizer, ema: this.ema };
  }

  protected override ownExtra(): Record<string, unknown> {
    return { options: this.options };
  }
}
