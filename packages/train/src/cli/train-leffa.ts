import { mkdir, writeFile } from 'node:fs/promises';
import * as T from '@leffa-webgpu/core';
import {
  LEFFA_CONFIGS,
  type LeffaConfig,
  LeffaModel,
  type VaeConfig,
  referenceFromGenerative,
  withReferenceCoordinates,
} from '@leffa-webgpu/models';
import {
  type FolderDataset,
  type LeffaExample,
  type LeffaTask,
  maskToImage,
  openDataset,
  syntheticExample,
  tile,
  toBatch,
  writePng,
} from '@leffa-webgpu/data';
import { HELD_OUT_SEED, evaluateLeffa } from '../leffa/evaluate.js';
import { type BatchLatents, type LeffaLossMode, LeffaTrainer } from '../leffa/trainer.js';
import type { ReadoutWeighting } from '../leffa/reference-readout.js';
import { leffaConfigFromExtra, resolveCheckpoint } from '@leffa-webgpu/pipelines';
import { lrScheduleFrom, type TrainingArgs } from './presets.js';
import { Progress } from './progress.js';
import { withRunLock } from './run-guard.js';
import { runTraining } from './training-loop.js';

export interface TrainLeffaArgs extends TrainingArgs {
  task: LeffaTask;
  leffa: LeffaLossMode;
  finetuneAfter: number;
  /** lambda of L = L_diffusion + lambda * L_leffa (default 1e-3, the paper's). */
  leffaWeight?: number;
  /** The Leffa loss's distance and averaging (defaults: Leffa's released training code; see leffaLoss). */
  leffaDistance?: 'l2' | 'smoothL1';
  leffaNormalization?: 'released' | 'maskArea';
  /** Weight of the supervised attention-flow loss (synthetic data only; default 0). See flowSupervisionLoss. */
  flowSupervision?: number;
  /**
   * Pose transfer on synthetic data: the flow supervision's weight on background pixels seen in both views, whose
   * flow is the identity (default 0, off). See SyntheticExampleOptions.backgroundFlow.
   */
  backgroundFlow?: number;
  /** Weight of the reference readout loss (default 0). See referenceReadoutLoss. */
  referenceReadout?: number;
  /** How the readout loss weighs its layers (default 'layers'). See referenceReadoutLoss. */
  readoutWeighting?: ReadoutWeighting;
  /** Weight of the reference mass loss (default 0). See referenceMassLoss. */
  referenceMass?: number;
  /** Min-SNR-gamma weighting of the diffusion loss (0 or absent: off). See LeffaTrainOptions.snrGamma. */
  snrGamma?: number;
  /** Try-on: the diffusion loss's weight inside the inpainting mask (default 1). See LeffaTrainOptions.maskWeight. */
  maskWeight?: number;
  /** Decay of the weights' EMA, which `export --ema` writes (default 0.999). */
  emaDecay?: number;
  /**
   * Examples in the training pool (seeds 0..pool-1; their VAE latents are encoded once), or 0 for data drawn
   * fresh from the generator: step s uses seeds s * batch .. s * batch + batch - 1, encoded at every step.
   */
  pool: number;
  /** A trained VAE checkpoint (required to train from scratch) or a full Leffa checkpoint to start from. */
  vae?: string;
  init?: string;
  /**
   * The VAE latent scaling factor to train with, replacing the checkpoint's: a number, or 'unit' to measure it
   * so that the training images' latents have unit variance (how Stable Diffusion chose 0.18215).
   */
  scalingFactor?: number | 'unit';
  /** Architecture: the tiny config trained here (default), or Stable Diffusion 1.5's / SDXL's (for official weights). */
  config?: 'tiny' | 'sd15' | 'sdxl';
  /** Both UNets' channels per level, replacing the config's (training from scratch only; recorded in checkpoints). */
  unetChannels?: number[];
  /**
   * The reference UNet also reads each latent position's (x, y) (LeffaConfig.referenceCoordinates). From an --init
   * checkpoint without them, the two new input channels start at zero weights (the model is unchanged at step 0).
   */
  referenceCoordinates?: boolean;
  /**
   * Before the first step, the reference UNet becomes a copy of the --init checkpoint's generative UNet (see
   * referenceFromGenerative): a trained denoiser's features, as Leffa's reference UNet starts from Stable Diffusion.
   */
  referenceFromGenerative?: boolean;
  sampleEvery: number;
  evalExamples: number;
  /** Examples from a folder dataset instead of synthetic ones: training examples and held-out ones. */
  examples?: (index: number) => LeffaExample;
  heldOut?: (index: number) => LeffaExample;
}

/**
 * Trains the tiny Leffa model (both UNets; VAE frozen) on synthetic try-on or pose-transfer data. Writes
 * checkpoints, sample grids (person, reference, agnostic, generated, reference warped by the attention flow),
 * the loss curve and metrics.json under `out` (whose lock it holds: see run-guard.ts). A run whose loss or
 * weights turn non-finite stops with an error naming the step; the last good checkpoint stays.
 */
export async function trainLeffa(args: TrainLeffaArgs): Promise<void> {
  await withRunLock(args.out, 'train', () => trainLeffaLocked(args));
}

async function trainLeffaLocked(args: TrainLeffaArgs): Promise<void> {
  await T.init();
  await mkdir(args.out, { recursive: true });
  if (!args.init && !args.vae)
    throw new Error(
      'train: give --vae (a trained VAE checkpoint) or --init (a Leffa checkpoint); no pretrained VAE can be downloaded here',
    );
  if (args.referenceFromGenerative && !args.init)
    throw new Error('train: --reference-from-generative copies a trained generative UNet; give --init <checkpoint>');
  if ((args.maskWeight ?? 1) !== 1 && args.task !== 'tryon')
    throw new Error(
      `train: --mask-weight weighs the try-on's inpainting region; pose transfer regenerates the whole image (got --task ${args.task})`,
    );
  const backgroundFlow = args.backgroundFlow ?? 0;
  if (backgroundFlow > 0 && (args.examples || args.task !== 'pose' || !((args.flowSupervision ?? 0) > 0)))
    throw new Error(
      'train: --background-flow weighs background pixels in the flow supervision of synthetic pose transfer; it needs --task pose, synthetic data and --flow-supervision > 0',
    );
  // The architecture is the checkpoint's: a Leffa checkpoint records it whole, a VAE checkpoint its VAE shape.
  const start = await T.openCheckpoint(resolveCheckpoint(args.init ?? args.vae!));
  const named = LEFFA_CONFIGS[args.config ?? 'tiny'];
  const recorded = start.extra as { config?: unknown; options?: { config?: unknown } } | null;
  let base: LeffaConfig = args.init
    ? recorded?.config || recorded?.options?.config
      ? leffaConfigFromExtra(recorded)
      : named
    : { ...named, vae: (recorded?.config as VaeConfig | undefined) ?? named.vae };
  if (args.unetChannels) {
    if (args.init)
      throw new Error("train: --unet-channels applies to training from scratch; --init keeps its checkpoint's UNets");
    const levels = base.unet.blockOutChannels.length;
    const groups = base.unet.normNumGroups;
    if (args.unetChannels.length !== levels || args.unetChannels.some((c) => c % groups !== 0))
      throw new Error(
        `train: --unet-channels needs ${levels} numbers (one per UNet level), each a multiple of the ${groups} norm groups; got ${args.unetChannels.join(',')}`,
      );
    base = { ...base, unet: { ...base.unet, blockOutChannels: [...args.unetChannels] } };
  }
  const addCoordinates = args.referenceCoordinates === true && !base.referenceCoordinates;
  // Its own VAE config: a measured scaling factor is written into it before the first step (and so into checkpoints).
  const config: LeffaConfig = {
    ...base,
    vae: { ...base.vae },
    ...(args.referenceCoordinates ? { referenceCoordinates: true } : {}),
  };
  const model = new LeffaModel(config);
  if (args.init && addCoordinates) {
    // The checkpoint's weights go through a model of its own shape, then in with zero coordinate weights.
    const plain = new LeffaModel(base);
    await start.load({ model: plain });
    const dict = T.noGrad(() => withReferenceCoordinates(plain.stateDict()));
    model.loadStateDict(dict);
    dict.get('unet_encoder.conv_in.weight')!.dispose();
    plain.dispose();
  } else await start.load({ model: args.init ? model : model.vae });
  if (args.referenceFromGenerative) {
    const own = model.stateDict();
    const dict = T.noGrad(() => referenceFromGenerative(own, config.vae.latentChannels));
    model.loadStateDict(dict);
    for (const [key, t] of dict) if (own.get(key) !== t) t.dispose();
  }
  const example = args.examples ?? ((seed: number) => syntheticExample(args.task, seed, args.height, args.width));
  // Training examples only: the held-out metrics (flow EPE included) stay those `eval` reports.
  const trainingExample =
    backgroundFlow > 0
      ? (seed: number) => syntheticExample(args.task, seed, args.height, args.width, { backgroundFlow })
      : example;
  if (args.scalingFactor !== undefined) {
    const measured = args.scalingFactor === 'unit';
    config.vae.scalingFactor = measured
      ? await unitVarianceScalingFactor(
          model,
          Array.from({ length: 16 }, (_, i) => example(i)),
        )
      : (args.scalingFactor as number);
    console.log(`VAE scaling factor ${config.vae.scalingFactor.toPrecision(5)} (was ${base.vae.scalingFactor})`);
  }
  const trainer = new LeffaTrainer(
    {
      config,
      seed: args.seed,
      lr: args.lr,
      weightDecay: 0,
      emaDecay: args.emaDecay ?? 0.999,
      leffa: {
        mode: args.leffa,
        finetuneAfter: args.finetuneAfter,
        ...(args.leffaWeight !== undefined ? { weight: args.leffaWeight } : {}),
        ...(args.leffaDistance ? { distance: args.leffaDistance } : {}),
        ...(args.leffaNormalization ? { normalization: args.leffaNormalization } : {}),
      },
      flowSupervision: args.flowSupervision ?? 0,
      referenceReadout: args.referenceReadout ?? 0,
      ...(args.readoutWeighting ? { readoutWeighting: args.readoutWeighting } : {}),
      referenceMass: args.referenceMass ?? 0,
      snrGamma: args.snrGamma ?? 0,
      maskWeight: args.maskWeight ?? 1,
    },
    model,
  );

  const pool = Array.from({ length: args.pool }, (_, i) => trainingExample(i));
  const latents = new Map<number, BatchLatents>();
  const latentsOf = (indices: number[]): BatchLatents => {
    const missing = indices.filter((i) => !latents.has(i));
    if (missing.length) {
      const enc = trainer.encodeBatch(toBatch(missing.map((i) => pool[i]!)));
      missing.forEach((idx, k) => {
        const pick = (t: T.Tensor) => T.keep(T.narrow(t, 0, k, 1));
        latents.set(idx, { x0: pick(enc.x0), masked: pick(enc.masked), reference: pick(enc.reference) });
      });
      T.dispose(enc);
    }
    const parts = indices.map((i) => latents.get(i)!);
    return {
      x0: T.concat(
        parts.map((p) => p.x0),
        0,
      ),
      masked: T.concat(
        parts.map((p) => p.masked),
        0,
      ),
      reference: T.concat(
        parts.map((p) => p.reference),
        0,
      ),
    };
  };

  const held = Array.from({ length: args.evalExamples }, (_, i) =>
    args.heldOut ? args.heldOut(i) : example(HELD_OUT_SEED + i),
  );
  const supervised = (args.flowSupervision ?? 0) > 0;
  // The losses logged, shown and plotted only when their weight is on (under the same name everywhere).
  const optional = [
    ...(supervised ? ['flow' as const] : []),
    ...((args.referenceReadout ?? 0) > 0 ? ['readout' as const] : []),
    ...((args.referenceMass ?? 0) > 0 ? ['mass' as const] : []),
  ];
  const title = `train ${args.task}`;

  /** Held-out metrics and the sample grid (`samples-<step>.png`, or samples-final.png). */
  const samples = async (final: boolean) => {
    // The final evaluation gets its own bar; one during training would draw over the training bar.
    const evalProgress = final ? new Progress('eval', 20) : null;
    const { metrics, images } = await evaluateLeffa(trainer.model, held, {
      seed: args.seed,
      steps: 20,
      onStep: (s) => evalProgress?.update(s),
    });
    evalProgress?.stop();
    const grid = tile(
      held.map((e, i) => [e.source, e.reference, maskToImage(e.mask), images.generated[i]!, images.warped[i]!]),
      args.width,
      args.height,
    );
    await writePng(`${args.out}/samples-${final ? 'final' : String(trainer.stepCount).padStart(6, '0')}.png`, grid);
    return metrics;
  };

  const schedule = lrScheduleFrom(args);
  const { history } = await runTraining(args, {
    command: 'train',
    title,
    trainer,
    logEvery: 10,
    step: () => {
      trainer.optimizer.lr = schedule(trainer.stepCount);
      return T.tidy(() => {
        if (args.pool === 0) {
          // Fresh data: the step number fixes the seeds, so a resumed run sees the same examples.
          const seeds = Array.from({ length: args.batch }, (_, k) => trainer.stepCount * args.batch + k);
          return trainer.step(toBatch(seeds.map(trainingExample), { flow: supervised }));
        }
        const indices = Array.from({ length: args.batch }, () => trainer.rng.int(0, args.pool));
        const batch = toBatch(
          indices.map((i) => pool[i]!),
          { flow: supervised },
        );
        return trainer.step(batch, latentsOf(indices));
      });
    },
    read: async (losses) => {
      const [total, diffusion, leffa, flow, readout, mass] = await Promise.all([
        losses.total.item(),
        losses.diffusion.item(),
        losses.leffa.item(),
        losses.flow.item(),
        losses.readout.item(),
        losses.mass.item(),
      ]);
      const extra = { flow, readout, mass };
      return { total, diffusion, leffa, ...Object.fromEntries(optional.map((k) => [k, extra[k]])) };
    },
    progress: {
      fields: ['loss', 'diff', 'leffa', ...optional],
      show: (e) => ({
        loss: e.total!,
        diff: e.diffusion!,
        leffa: e.leffa!,
        ...Object.fromEntries(optional.map((k) => [k, e[k]!])),
      }),
    },
    series: [
      ['total', 'total'],
      ['diffusion', 'diffusion'],
      ['leffa', 'leffa'],
      ...optional.map((k) => [k, k] as const),
    ],
    checkpointExtra: () => ({ task: args.task, size: [args.height, args.width] }),
    afterStep: async () => {
      if (args.sampleEvery > 0 && trainer.stepCount % args.sampleEvery === 0 && trainer.stepCount < args.steps) {
        await samples(false);
        return true;
      }
    },
  });
  const metrics = await samples(true);
  await writeFile(
    `${args.out}/metrics.json`,
    `${JSON.stringify({ task: args.task, steps: trainer.stepCount, leffa: args.leffa, eval: metrics, history }, null, 2)}\n`,
  );
  console.log(
    `final: L1 ${metrics.l1.toFixed(4)}, PSNR ${metrics.psnr.toFixed(2)} dB, SSIM ${metrics.ssim.toFixed(3)}, flow EPE ${metrics.meanFlowEpe.toFixed(2)} px`,
  );
}

/**
 * 1 / the standard deviation of the VAE's latents (posterior means) of the examples' person and reference images,
 * encoded four at a time.
 */
export async function unitVarianceScalingFactor(model: LeffaModel, examples: LeffaExample[]): Promise<number> {
  let sum = 0;
  let sumSquares = 0;
  let count = 0;
  for (let i = 0; i < examples.length; i += 4) {
    const batch = toBatch(examples.slice(i, i + 4));
    const images = [batch.source, batch.reference];
    const latents = T.noGrad(() =>
      T.tidy(() =>
        T.concat(
          images.map((x) => T.flatten(model.vae.encode(x).mode())),
          0,
        ),
      ),
    );
    const values = await latents.data();
    T.dispose([latents, batch]);
    for (const v of values) {
      sum += v;
      sumSquares += v * v;
    }
    count += values.length;
  }
  const mean = sum / count;
  return 1 / Math.sqrt(sumSquares / count - mean * mean);
}

/**
 * Training and held-out examples from a dataset folder: its training list, and its test list when the
 * folder has one (otherwise the training list's last examples, which then also train).
 */
export function folderExamples(
  root: string,
  task: LeffaTask,
  category: 'upper_body' | 'lower_body' | 'dresses',
  height: number,
  width: number,
) {
  const train = openDataset(root, { split: 'train', task, category });
  let test: FolderDataset;
  try {
    test = openDataset(root, { split: 'test', task, category });
  } catch {
    test = train;
  }
  return {
    length: train.length,
    sources: {
      examples: (i: number) => train.example(i % train.length, height, width),
      heldOut: (i: number) =>
        test.example(test === train ? train.length - 1 - (i % train.length) : i % test.length, height, width),
    },
  };
}
