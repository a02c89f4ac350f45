/**
 * SCHP training with self-correction (Li et al., "Self-Correction for Human Parsing", TPAMI 2020; train.py):
 *
 * - Cycle 0: warm-up, then cosine annealing (lr -> lr / 100) up to `cycleStart`, with the cycle-0 loss (hard
 *   labels). Then cosine cycles of `cycleSteps` steps (peak lr / 2), as the official SGDRScheduler
 *   (models' schpCyclicalLR, stepped per optimizer step here instead of per epoch).
 * - At the end of cycle 0 and of every later cycle (round m = 0, 1, ...):
 *   1. online model aggregation of the parameters: w_schp = m/(m+1) w_schp + 1/(m+1) w (round 0 copies w);
 *   2. BN re-estimation of the aggregated model: running statistics reset and re-accumulated as a cumulative
 *      average (BatchNorm momentum null, the official momentum b / (n + b) for equal batches) over a subset
 *      of training images;
 *   3. from then on, online label refinement: the targets of the parsing and edge losses become
 *      softmax((1 - a) z_schp + a onehot(y)) with z_schp the aggregated model's logits for the same
 *      augmented batch and a = 1 / (m + 1) for m completed rounds (the official moving_average of the soft
 *      predictions and the one-hot labels with weight 1 / (cycle_n + 1)).
 *
 * The aggregated model runs in eval mode (its re-estimated running statistics, no dropout) when it produces
 * soft labels; the official code leaves it in train mode, which normalises with the batch's statistics and
 * keeps updating the running statistics it has just re-estimated.
 */
import * as T from '@leffa-webgpu/core';
import { LIP_LABELS, SCHP_CONFIGS, type SCHPConfig, SCHPNetwork, schpCyclicalLR } from '@leffa-webgpu/models';
import { type AugmentOptions, generateSample, randomAffine, Rng, warpImage, warpLabels } from '@leffa-webgpu/data';
import { edgeTargets } from './edges.js';
import { IGNORE_LABEL, type SchpLossWeights, schpLoss } from './losses.js';
import { corruptLabels } from './noise.js';
import { schpPart } from '@leffa-webgpu/pipelines';
import { TrainerBase, withGenerator } from '../trainer.js';

/** One training or evaluation image with its parsing labels (LIP classes; 255 ignored). */
export interface ParsingExample {
  width: number;
  height: number;
  /** HWC RGB. */
  image: Uint8Array;
  labels: Uint8Array;
}

/** LIP's left/right label pairs as warpLabels takes them. */
export const LIP_FLIP_PAIRS: [number, number][] = LIP_LABELS.flipPairs.map(([a, b]) => [a, b]);

/** A synthetic person and its LIP parsing; `labelNoise` > 0 disturbs the labels (corruptLabels, seeded by `seed`). */
export function syntheticParsingExample(seed: number, height: number, width: number, labelNoise = 0): ParsingExample {
  const s = generateSample({ seed, height, width });
  const labels =
    labelNoise > 0
      ? corruptLabels(s.person.parsing, width, height, { level: labelNoise, seed, pairs: LIP_FLIP_PAIRS })
      : s.person.parsing;
  return { width, height, image: s.person.image, labels };
}

// ImageNet statistics in BGR order, as parseHuman (SCHP's transforms).
const BGR_MEAN = [0.406, 0.456, 0.485];
const BGR_STD = [0.225, 0.224, 0.229];

/** The network input [N, 3, H, W] of HWC RGB images: BGR, / 255, ImageNet-normalised (as parseHuman). */
export function parsingInput(images: Uint8Array[], height: number, width: number): Float32Array {
  const plane = height * width;
  const out = new Float32Array(images.length * 3 * plane);
  images.forEach((img, b) => {
    if (img.length !== 3 * plane)
      throw new Error(
        `parsingInput: image ${b} has ${img.length} bytes, expected ${3 * plane} for ${height}x${width} RGB`,
      );
    for (let c = 0; c < 3; c++) {
      const base = (b * 3 + c) * plane;
      for (let i = 0; i < plane; i++) out[base + i] = (img[3 * i + 2 - c]! / 255 - BGR_MEAN[c]!) / BGR_STD[c]!;
    }
  });
  return out;
}

/**
 * avg <- (1 - alpha) avg + alpha model over the parameters (the official schp.moving_average; buffers are
 * left alone: BN statistics are re-estimated instead). alpha = 1 copies. Both modules must have the same
 * parameter names and shapes.
 */
export function aggregateModels(avg: T.Module, model: T.Module, alpha: number): void {
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`aggregateModels: alpha must be in [0, 1], got ${alpha}`);
  const src = new Map(model.namedParameters());
  T.noGrad(() =>
    T.tidy(() => {
      for (const [name, p] of avg.namedParameters()) {
        const w = src.get(name);
        if (!w || w.shape.join() !== p.shape.join())
          throw new Error(
            `aggregateModels: parameter '${name}' ${T.formatShape(p.shape)} has no match in the trained model`,
          );
        // A fresh tensor each time: assign adopts its storage, and the two models must never share one.
        p.assign(alpha === 1 ? T.mul(w, 1) : T.add(T.mul(p, 1 - alpha), T.mul(w, alpha)));
      }
    }),
  );
}

/** Copies every parameter and buffer of `src` into `dst` (fresh storage, nothing shared). */
export function copyModule(dst: T.Module, src: T.Module): void {
  const from = src.stateDict();
  T.noGrad(() =>
    T.tidy(() => {
      for (const [name, t] of dst.stateDict()) {
        const v = from.get(name);
        if (!v || v.shape.join() !== t.shape.join())
          throw new Error(`copyModule: '${name}' ${T.formatShape(t.shape)} has no match in the source`);
        t.assign(v.dtype === 'int32' ? T.cast(T.cast(v, 'float32'), 'int32') : T.mul(v, 1));
      }
    }),
  );
}

/**
 * SCHP's BN re-estimation (schp.bn_re_estimate): every BatchNorm (and InPlaceABN) of `model` gets its running
 * statistics reset (mean 0, var 1) and re-accumulated as a cumulative average over `batches` forward passes
 * in training mode (momentum null: after k batches running_mean is the mean of the k batch means, running_var
 * the mean of the k unbiased batch variances). Momenta and the training flag are restored afterwards.
 * `input(i)` builds batch i; it runs inside a tidy scope, so its tensors are freed.
 */
export function reestimateBatchNorm(
  model: T.Module & { forward(x: T.Tensor): unknown },
  batches: number,
  input: (i: number) => T.Tensor,
): void {
  const bns = [...model.namedModules()]
    .map(([, m]) => m)
    .filter((m): m is T.nn.BatchNorm2d => m instanceof T.nn.BatchNorm2d && m.running_mean !== null);
  if (bns.length === 0) return;
  if (!(Number.isInteger(batches) && batches >= 1))
    throw new Error(`reestimateBatchNorm: needs at least one batch, got ${batches}`);
  const momenta = bns.map((b) => b.momentum);
  const wasTraining = model.training;
  for (const b of bns) {
    b.resetRunningStats();
    b.momentum = null;
  }
  model.train();
  try {
    T.noGrad(() => {
      for (let i = 0; i < batches; i++) T.tidy(() => void model.forward(input(i)));
    });
  } finally {
    bns.forEach((b, i) => (b.momentum = momenta[i]!));
    model.train(wasTraining);
  }
}

export interface SchpTrainOptions {
  config?: SCHPConfig;
  /** Seeds the trainer's generator (the model's initial weights, dropout) and the augmentation. */
  seed?: number;
  /** 'sgd' as the paper (momentum 0.9, weight decay 5e-4) or 'adamw' (no weight decay; easier from scratch). */
  optimizer?: 'sgd' | 'adamw';
  /** Peak learning rate (default 7e-3 for SGD, as the official, 2e-3 for AdamW). */
  lr?: number;
  weightDecay?: number;
  /** Linear warm-up steps from lr / 100 (default cycleStart / 10, the official 10 of 100 epochs). */
  warmupSteps?: number;
  /** The step at which cycle 0 ends and the first self-correction round happens (official: epoch 100). */
  cycleStart: number;
  /** Length of each later cycle (official: 10 epochs). */
  cycleSteps: number;
  /** Most self-correction rounds (default unlimited). */
  maxRounds?: number;
  /** Random scale / rotation / flip (with the LIP left/right swap); false turns it off. */
  augment?: boolean | AugmentOptions;
  weights?: SchpLossWeights;
  klPerElement?: boolean;
}

const DEFAULT_AUGMENT: AugmentOptions = { maxRotation: 30, scale: [0.75, 1.25], flip: true };

/** Per step: [total, parsing, edge, consistency] as one [4] tensor (one readback). */
export type SchpStepLosses = T.Tensor;

/**
 * SCHP training on ParsingExamples: the network being trained (`model`), its online aggregate (`schp`) and
 * the self-correction schedule. A loop calls `step(batch)` and, when `correctionDue` is true, `selfCorrect`
 * with a few batches of training images for the BN re-estimation.
 */
export class SchpTrainer extends TrainerBase {
  protected readonly name = 'SchpTrainer';
  protected override readonly kind = 'schp';
  readonly model: SCHPNetwork;
  /** The aggregated model: the average of the end-of-cycle weights, with re-estimated BN statistics. */
  readonly schp: SCHPNetwork;
  readonly optimizer: T.optim.SGD | T.optim.AdamW;
  readonly schedule: T.optim.LRSchedule;
  /** Draws the initial weights of a model the trainer builds and the network's dropout masks. */
  readonly generator: T.Generator;
  readonly rng: Rng;
  readonly config: SCHPConfig;
  /** Self-correction rounds done (the official cycle_n). */
  rounds = 0;

  constructor(
    readonly options: SchpTrainOptions,
    model?: SCHPNetwork,
  ) {
    super();
    const seed = options.seed ?? 0;
    this.config = model?.config ?? options.config ?? SCHP_CONFIGS.small;
    this.generator = new T.Generator(seed);
    this.model = model ?? withGenerator(this.generator, () => new SCHPNetwork(this.config));
    this.schp = T.nn.withoutInit(() => new SCHPNetwork(this.config));
    copyModule(this.schp, this.model);
    this.schp.eval();
    this.rng = new Rng(seed ^ 0x3c6ef372);
    const sgd = (options.optimizer ?? 'sgd') === 'sgd';
    const lr = options.lr ?? (sgd ? 7e-3 : 2e-3);
    const weightDecay = options.weightDecay ?? (sgd ? 5e-4 : 0);
    this.optimizer = sgd
      ? new T.optim.SGD(this.model.parameters(), { lr, momentum: 0.9, weightDecay })
      : new T.optim.AdamW(this.model.parameters(), { lr, weightDecay });
    const { cycleStart, cycleSteps } = options;
    if (!(Number.isInteger(cycleSteps) && cycleSteps >= 1))
      throw new Error(`SchpTrainer: cycleSteps must be an integer >= 1, got ${cycleSteps}`);
    const warmupSteps = options.warmupSteps ?? Math.floor(cycleStart / 10);
    if (!(Number.isInteger(cycleStart) && cycleStart > warmupSteps)) {
      throw new Error(
        `SchpTrainer: cycleStart must be an integer after the ${warmupSteps} warm-up steps, got ${cycleStart}`,
      );
    }
    this.schedule = schpCyclicalLR({ baseLr: lr, warmupSteps, cyclicalStart: cycleStart, cyclicalSteps: cycleSteps });
  }

  /** Self-correction rounds that are due once `step` steps are done. */
  roundsDue(step = this.stepCount): number {
    const { cycleStart, cycleSteps, maxRounds = Infinity } = this.options;
    return step < cycleStart ? 0 : Math.min(maxRounds, 1 + Math.floor((step - cycleStart) / cycleSteps));
  }

  /** A cycle ended and its round has not run yet (also right after resuming from a checkpoint saved in between). */
  get correctionDue(): boolean {
    return this.rounds < this.roundsDue();
  }

  /** The augmented view of an example (labels warped nearest, outside 255, flips swap left/right classes). */
  augment(e: ParsingExample): ParsingExample {
    if (this.options.augment === false) return e;
    const opts =
      this.options.augment === true || this.options.augment === undefined ? DEFAULT_AUGMENT : this.options.augment;
    const t = randomAffine(this.rng, e.width, e.height, opts);
    return {
      ...e,
      image: warpImage(e.image, e.width, e.height, t),
      labels: warpLabels(e.labels, e.width, e.height, t, LIP_FLIP_PAIRS, IGNORE_LABEL),
    };
  }

  /** One optimizer step on a batch (at least 2 images: batch norm needs them); returns the detached losses. */
  step(batch: ParsingExample[]): SchpStepLosses {
    if (batch.length < 2)
      throw new Error(
        `SchpTrainer.step: batch norm in training needs at least 2 images per batch, got ${batch.length}`,
      );
    const { height: H, width: W } = batch[0]!;
    if (batch.some((e) => e.height !== H || e.width !== W))
      throw new Error(`SchpTrainer.step: every image of a batch must be ${H}x${W}`);
    const views = batch.map((e) => this.augment(e));
    const n = H * W;
    const labels = new Int32Array(batch.length * n);
    const edges = new Int32Array(batch.length * n);
    views.forEach((v, b) => {
      labels.set(v.labels, b * n);
      edges.set(edgeTargets(v.labels, W, H, IGNORE_LABEL), b * n);
    });
    this.optimizer.lr = this.schedule(this.stepCount);
    this.model.train();
    // The network's Dropout2d draws from the global generator: the trainer's own stands in for it.
    const losses = withGenerator(this.generator, () =>
      T.tidy(() => {
        const x = T.tensor(
          parsingInput(
            views.map((v) => v.image),
            H,
            W,
          ),
          [batch.length, 3, H, W],
        );
        const targets = {
          labels: T.tensor(labels, [batch.length, H, W]),
          edges: T.tensor(edges, [batch.length, H, W]),
        };
        let soft: { parsing: T.Tensor; edge: T.Tensor; alpha: number } | undefined;
        if (this.rounds >= 1) {
          const [[, fusion], [edge]] = T.noGrad(() => this.schp.forward(x));
          soft = { parsing: fusion, edge, alpha: 1 / (this.rounds + 1) };
        }
        const l = schpLoss(this.model.forward(x), soft ? { ...targets, soft } : targets, {
          ...(this.options.weights ? { weights: this.options.weights } : {}),
          klPerElement: this.options.klPerElement ?? false,
        });
        l.total.backward();
        this.optimizer.step();
        this.optimizer.zeroGrad();
        return T.noGrad(() => T.stack([l.total, l.parsing, l.edge, l.consistency].map((t) => t.detach())));
      }),
    );
    this.stepCount++;
    return losses;
  }

  /**
   * One self-correction round: aggregate the current weights into `schp` (weight 1 / (m + 1)), then
   * re-estimate its BN statistics on `bnBatches` (un-augmented training images, >= 2 per batch).
   */
  selfCorrect(bnBatches: ParsingExample[][]): void {
    if (bnBatches.length === 0)
      throw new Error('SchpTrainer.selfCorrect: BN re-estimation needs at least one batch of training images');
    aggregateModels(this.schp, this.model, 1 / (this.rounds + 1));
    this.rounds++;
    // The re-estimation runs in training mode (dropout on), drawing from the trainer's generator.
    withGenerator(this.generator, () =>
      reestimateBatchNorm(this.schp, bnBatches.length, (i) => {
        const b = bnBatches[i]!;
        if (b.length < 2)
          throw new Error(
            `SchpTrainer.selfCorrect: BN batch ${i} has ${b.length} image(s); batch norm needs at least 2`,
          );
        const { height: H, width: W } = b[0]!;
        return T.tensor(
          parsingInput(
            b.map((e) => e.image),
            H,
            W,
          ),
          [b.length, 3, H, W],
        );
      }),
    );
    this.schp.eval();
  }

  /**
   * The refined parsing targets the current round trains on, for un-augmented examples: the class
   * distribution softmax((1 - a) z_schp + a onehot(y)) [N, C, H, W] with a = 1 / (rounds + 1) (ignored pixels
   * get z_schp alone mixed with class 0; the loss skips them). Needs a completed round.
   */
  softLabels(batch: ParsingExample[]): T.Tensor {
    if (this.rounds < 1) throw new Error('SchpTrainer.softLabels: no self-correction round has run yet (rounds = 0)');
    const { height: H, width: W } = batch[0]!;
    const a = 1 / (this.rounds + 1);
    const C = this.config.numClasses;
    return T.noGrad(() =>
      T.tidy(() => {
        const x = T.tensor(
          parsingInput(
            batch.map((e) => e.image),
            H,
            W,
          ),
          [batch.length, 3, H, W],
        );
        const z = T.interpolate(this.schp.forward(x)[0][1], { size: [H, W], mode: 'bilinear', alignCorners: true });
        const hard = Int32Array.from({ length: batch.length * H * W }, (_, i) => {
          const l = batch[Math.floor(i / (H * W))]!.labels[i % (H * W)]!;
          return l === IGNORE_LABEL ? 0 : l;
        });
        const onehot = T.permute(T.oneHot(T.tensor(hard, [batch.length, H, W]), C), [0, 3, 1, 2]);
        return T.softmax(T.add(T.mul(z, 1 - a), T.mul(onehot, a)), 1);
      }),
    );
  }

  /** The model to evaluate or ship: the aggregate once a round has run, else the trained network. */
  get best(): SCHPNetwork {
    return this.rounds >= 1 ? this.schp : this.model;
  }

  /**
   * Checkpoints hold both networks: model.safetensors the trained one, ema.safetensors the aggregate (same keys,
   * loadable into an SCHPNetwork); extra adds the rounds, config and options to the step and random state.
   */
  protected parts(): T.CheckpointParts {
    return { model: this.model, optimizer: this.optimizer, ema: schpPart(this.schp) };
  }

  protected override ownExtra(): Record<string, unknown> {
    return { rounds: this.rounds, config: this.config, options: this.options };
  }

  protected override checkExtra(extra: Record<string, unknown>, dir: string): void {
    // Configs that differ only in structure (the stem pool) share every parameter shape, so compare them whole.
    const saved = JSON.stringify({ stemPool: true, ...(extra.config as object) });
    const mine = JSON.stringify({ stemPool: true, ...this.config });
    if (saved !== mine)
      throw new Error(`SchpTrainer.load: '${dir}' was trained with config ${saved}, this trainer has ${mine}`);
    if (!Number.isInteger(extra.rounds))
      throw new Error(`SchpTrainer.load: '${dir}' records no self-correction rounds (state.json extra.rounds)`);
  }

  protected override restore(extra: Record<string, unknown>): void {
    this.rounds = extra.rounds as number;
    this.schp.eval();
  }
}
