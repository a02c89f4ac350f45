/**
 * DensePose training on synthetic people: DensePoseHead, AdamW, warm-up then cosine (or constant) learning
 * rate, scale / rotation / flip augmentation, the DensePose losses (see losses.ts), atomic resumable
 * checkpoints.
 *
 * Horizontal flips. A mirrored person has its left and right parts swapped and each chart mirrored. With the
 * synthetic generator's charts this is exact and simple: every part's V is the across-the-part coordinate
 * ((s + 1) / 2, s from image-left to image-right in the part's own rotating frame, for bands and ellipses
 * alike) and U runs along the part, so mirroring maps (U, V) -> (U, 1 - V) on every part, and the part index
 * goes through the left/right pairs of the 24 parts. The synthetic head is one chart (always part 24), so the
 * flip keeps it there (SYNTHETIC_FLIP_PAIRS). Real DensePose data needs detectron2's UV_symmetry_transforms.mat
 * per-part lookup tables instead and swaps head 23 <-> 24 (DENSEPOSE_FLIP_PAIRS); that table is not used here.
 * The test suite checks the rule against an exactly mirrored synthetic render.
 */
import * as T from '@leffa-webgpu/core';
import { DENSEPOSE_CONFIGS, type DensePoseConfig, DensePoseHead } from '@leffa-webgpu/models';
import { type Affine, type AugmentOptions, generateSample, randomAffine, Rng, warpImage } from '@leffa-webgpu/data';
import { type DensePoseLossOptions, densePoseLoss } from './losses.js';
import { TrainerBase, withGenerator } from '../trainer.js';

/** One image with dense DensePose ground truth. */
export interface DensePoseExample {
  width: number;
  height: number;
  /** HWC RGB. */
  image: Uint8Array;
  /** Part index per pixel: 0 background, 1..24 detectron2's parts. */
  parts: Uint8Array;
  /** Chart coordinates in [0, 1] (0 on background). */
  u: Float32Array;
  v: Float32Array;
}

/** detectron2's left/right part symmetry (DensePoseTransformData.POINT_LABEL_SYMMETRIES), as pairs. */
export const DENSEPOSE_FLIP_PAIRS: readonly [number, number][] = [
  [3, 4],
  [5, 6],
  [7, 8],
  [9, 10],
  [11, 12],
  [13, 14],
  [15, 16],
  [17, 18],
  [19, 20],
  [21, 22],
  [23, 24],
];

/** The pairs for the synthetic people: as detectron2's, but the head is one chart (24) that mirrors onto itself. */
export const SYNTHETIC_FLIP_PAIRS: readonly [number, number][] = DENSEPOSE_FLIP_PAIRS.filter(([a]) => a !== 23);

/** A synthetic person and its IUV. */
export function syntheticDensePoseExample(seed: number, height: number, width: number): DensePoseExample {
  const s = generateSample({ seed, height, width });
  return { width, height, image: s.person.image, parts: s.person.iuv.I, u: s.person.iuv.U, v: s.person.iuv.V };
}

/** The network input [N, 3, H, W] of HWC RGB images: RGB / 255 (DensePoseHead normalises itself). */
export function densePoseInput(images: Uint8Array[], height: number, width: number): Float32Array {
  const plane = height * width;
  const out = new Float32Array(images.length * 3 * plane);
  images.forEach((img, b) => {
    if (img.length !== 3 * plane)
      throw new Error(
        `densePoseInput: image ${b} has ${img.length} bytes, expected ${3 * plane} for ${height}x${width} RGB`,
      );
    for (let c = 0; c < 3; c++) {
      const base = (b * 3 + c) * plane;
      for (let i = 0; i < plane; i++) out[base + i] = img[3 * i + c]! / 255;
    }
  });
  return out;
}

/**
 * Warps IUV ground truth with an augmentation transform: nearest sampling (warpLabels' rule: the source
 * pixel containing the mapped centre), outside = background; a flip swaps the `pairs` and maps V -> 1 - V
 * (see the module comment).
 */
export function warpIuv(
  e: Pick<DensePoseExample, 'width' | 'height' | 'parts' | 'u' | 'v'>,
  t: Affine,
  pairs: readonly [number, number][] = SYNTHETIC_FLIP_PAIRS,
): { parts: Uint8Array; u: Float32Array; v: Float32Array } {
  const { width, height } = e;
  const n = width * height;
  const parts = new Uint8Array(n);
  const u = new Float32Array(n);
  const v = new Float32Array(n);
  const swap = new Map<number, number>();
  if (t.flip) for (const [l, r] of pairs) swap.set(l, r).set(r, l);
  const [a, b, c, d, ee, f] = t.inverse;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sx = Math.floor(a * (x + 0.5) + b * (y + 0.5) + c);
      const sy = Math.floor(d * (x + 0.5) + ee * (y + 0.5) + f);
      if (sx < 0 || sy < 0 || sx >= width || sy >= height) continue;
      const s = sy * width + sx;
      const p = e.parts[s]!;
      if (p === 0) continue;
      const o = y * width + x;
      parts[o] = swap.get(p) ?? p;
      u[o] = e.u[s]!;
      v[o] = t.flip ? 1 - e.v[s]! : e.v[s]!;
    }
  }
  return { parts, u, v };
}

export interface DensePoseTrainOptions {
  config?: DensePoseConfig;
  /** Seeds the trainer's generator (the initial weights of a model it builds) and the augmentation. */
  seed?: number;
  /** Peak AdamW learning rate (2e-3). */
  lr?: number;
  /** AdamW decoupled weight decay (1e-4, DensePose R-CNN's SGD weight decay). */
  weightDecay?: number;
  /** Linear warm-up steps from 0 (default 0). */
  warmupSteps?: number;
  /** With it: cosine decay to lr / 100 at this step; without: constant after the warm-up. */
  totalSteps?: number;
  /** Scale / rotation / flip; false turns it off. */
  augment?: boolean | AugmentOptions;
  /** Left/right part pairs a flip swaps (SYNTHETIC_FLIP_PAIRS). */
  flipPairs?: readonly [number, number][];
  loss?: DensePoseLossOptions;
}

const DEFAULT_AUGMENT: AugmentOptions = { maxRotation: 20, scale: [0.8, 1.2], flip: true };

/** DensePose training (see the module comment); a loop calls `step(batch)`. */
export class DensePoseTrainer extends TrainerBase {
  protected readonly name = 'DensePoseTrainer';
  protected override readonly kind = 'densepose';
  readonly model: DensePoseHead;
  readonly optimizer: T.optim.AdamW;
  readonly schedule: T.optim.LRSchedule;
  /** Draws the initial weights of a model the trainer builds (and anything random in the network's forward). */
  readonly generator: T.Generator;
  readonly rng: Rng;
  readonly config: DensePoseConfig;

  constructor(
    readonly options: DensePoseTrainOptions = {},
    model?: DensePoseHead,
  ) {
    super();
    const seed = options.seed ?? 0;
    this.config = model?.config ?? options.config ?? DENSEPOSE_CONFIGS.small;
    this.generator = new T.Generator(seed);
    this.model = model ?? withGenerator(this.generator, () => new DensePoseHead(this.config));
    this.rng = new Rng(seed ^ 0x5bd1e995);
    const lr = options.lr ?? 2e-3;
    this.optimizer = new T.optim.AdamW(this.model.parameters(), { lr, weightDecay: options.weightDecay ?? 1e-4 });
    const warmupSteps = options.warmupSteps ?? 0;
    this.schedule =
      options.totalSteps !== undefined
        ? T.optim.warmupCosineLR({
            baseLr: lr,
            warmupSteps,
            totalSteps: Math.max(options.totalSteps, warmupSteps),
            minLr: lr / 100,
          })
        : T.optim.constantLR(lr, { warmupSteps });
  }

  /** The augmented view of an example (image bilinear with a black border, IUV nearest with the flip rule). */
  augment(e: DensePoseExample): DensePoseExample {
    if (this.options.augment === false) return e;
    const opts =
      this.options.augment === true || this.options.augment === undefined ? DEFAULT_AUGMENT : this.options.augment;
    const t = randomAffine(this.rng, e.width, e.height, opts);
    return {
      ...e,
      image: warpImage(e.image, e.width, e.height, t),
      ...warpIuv(e, t, this.options.flipPairs ?? SYNTHETIC_FLIP_PAIRS),
    };
  }

  /** One optimizer step on a batch (at least 2 images: batch norm); returns the detached [total, part, uv]. */
  step(batch: DensePoseExample[]): T.Tensor {
    if (batch.length < 2)
      throw new Error(
        `DensePoseTrainer.step: batch norm in training needs at least 2 images per batch, got ${batch.length}`,
      );
    const { height: H, width: W } = batch[0]!;
    if (batch.some((e) => e.height !== H || e.width !== W))
      throw new Error(`DensePoseTrainer.step: every image of a batch must be ${H}x${W}`);
    const views = batch.map((e) => this.augment(e));
    const n = H * W;
    const parts = new Int32Array(batch.length * n);
    const u = new Float32Array(batch.length * n);
    const v = new Float32Array(batch.length * n);
    views.forEach((e, b) => {
      parts.set(e.parts, b * n);
      u.set(e.u, b * n);
      v.set(e.v, b * n);
    });
    this.optimizer.lr = this.schedule(this.stepCount);
    this.model.train();
    const losses = withGenerator(this.generator, () =>
      T.tidy(() => {
        const x = T.tensor(
          densePoseInput(
            views.map((e) => e.image),
            H,
            W,
          ),
          [batch.length, 3, H, W],
        );
        const shape = [batch.length, H, W];
        const l = densePoseLoss(
          this.model.forward(x),
          { parts: T.tensor(parts, shape), u: T.tensor(u, shape), v: T.tensor(v, shape) },
          this.options.loss,
        );
        l.total.backward();
        this.optimizer.step();
        this.optimizer.zeroGrad();
        return T.noGrad(() => T.stack([l.total, l.part, l.uv].map((t) => t.detach())));
      }),
    );
    this.stepCount++;
    return losses;
  }

  protected parts(): T.CheckpointParts {
    return { model: this.model, optimizer: this.optimizer };
  }

  protected override ownExtra(): Record<string, unknown> {
    return { config: this.config, options: this.options };
  }

  protected override checkExtra(extra: Record<string, unknown>, dir: string): void {
    if (JSON.stringify(extra.config) !== JSON.stringify(this.config)) {
      throw new Error(
        `DensePoseTrainer.load: '${dir}' holds config ${JSON.stringify(extra.config)}, the trainer ${JSON.stringify(this.config)}`,
      );
    }
  }
}
