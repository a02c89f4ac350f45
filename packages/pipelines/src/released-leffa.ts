/**
 * Leffa's released try-on and pose-transfer demo (app.py's LeffaPredictor.leffa_predict) on this library's
 * models, browser-safe: the models come from `ReleasedLeffaSources` (loaded lazily, once; the Node entry
 * `loadReleasedLeffa(folder)` reads them from the released checkpoint folder).
 *
 * Steps, as app.py:
 * 1. both images resize_and_center'ed to 768x1024 on white (cv2 bicubic);
 * 2. try-on: the person resized to 384x512 (PIL bicubic), human parsing (parsing_atr/lip.onnx) and OpenPose
 *    (body_pose_model.pth, the first person found) on it, the agnostic mask of the garment type
 *    (get_agnostic_mask_hd for viton_hd, _dc for dress_code), resized back to 768x1024 (PIL bicubic);
 *    pose transfer: everything masked;
 * 3. the DensePose R-CNN on the 768x1024 person: the segmentation in parula (viton_hd), the part index three
 *    times (dress_code) or the IUV image (pose transfer);
 * 4. LeffaTransform, then Leffa sampling with the model's DDPM schedule, 50 steps, guidance 2.5 with the
 *    released rescale, the seed, optional reference acceleration, and do_repaint when asked.
 *
 * Not reproduced: PyTorch's random numbers (a seed gives a different, equally valid sample) and float16 rounding
 * of the reference's intermediate tensors where the model is not halved.
 */
import * as T from '@leffa-webgpu/core';
import {
  type AutoencoderKL,
  type DensePosePredictor,
  type LeffaHumanParsing,
  type LeffaModel,
  type LeffaPhase,
  type OpenPoseBody,
  type VaeTilingOptions,
  estimatePose,
  leffaSample,
  pilResize,
  vaeDeviceLimits,
  vaeFitsDevice,
  vaeTileSizeFor,
} from '@leffa-webgpu/models';
import type { GarmentCategory, RgbImage } from '@leffa-webgpu/data/web';
import { leffaLowMemoryPlacement, leffaOffloadSchedule } from './leffa-schedule.js';
import { leffaAgnosticMask } from './leffa-masks.js';
import {
  type LeffaTransformArrays,
  leffaRepaint,
  leffaTransform,
  leffaTransformTensors,
  resizeAndCenter,
} from './released-leffa-transform.js';

/** Which released model a pipeline runs: VITON-HD or DressCode try-on, or (SDXL) pose transfer. */
export type ReleasedLeffaModel = 'viton_hd' | 'dress_code' | 'pose_transfer';

/** app.py's sizes: the model works at 1024x768, the parser and OpenPose at half of it. */
export const RELEASED_LEFFA_SIZE: [number, number] = [1024, 768];

/**
 * The released folder's layout (huggingface franciszzj/Leffa, downloaded by app.py to ./ckpts): which file each
 * piece is read from, relative to the folder. schp/ is in the release too, but app.py never calls it.
 */
export const RELEASED_LEFFA_FILES = {
  viton_hd: 'virtual_tryon.pth',
  dress_code: 'virtual_tryon_dc.pth',
  pose_transfer: 'pose_transfer.pth',
  sd15: 'stable-diffusion-inpainting',
  sdxl: 'stable-diffusion-xl-1.0-inpainting-0.1',
  openpose: 'openpose/body_pose_model.pth',
  parsingAtr: 'humanparsing/parsing_atr.onnx',
  parsingLip: 'humanparsing/parsing_lip.onnx',
  densepose: 'densepose/model_final_162be9.pkl',
} as const;

/** How `ReleasedLeffaSources.leffa` is asked to load. */
export interface LeffaLoadRequest {
  /**
   * Set for the low-memory schedule: call it on the built model before its weights load (loadLeffaWeights'
   * `beforeLoad`), so that the parts it puts in host memory load there. A source that cannot ignores it (the
   * parts then leave the device when sampling starts).
   */
  beforeLoad?: (model: LeffaModel) => Promise<void>;
}

/** The models a released pipeline needs, each loaded on first use. */
export interface ReleasedLeffaSources {
  leffa(request?: LeffaLoadRequest): Promise<LeffaModel>;
  densepose(): Promise<DensePosePredictor>;
  /** Try-on only. */
  parsing?(): Promise<LeffaHumanParsing>;
  /** Try-on only. */
  openpose?(): Promise<OpenPoseBody>;
}

export interface ReleasedLeffaRunOptions {
  /** Sampling steps (app.py's leffa_predict: 50). */
  steps?: number;
  /** Classifier-free guidance scale, also the released guidance rescale (2.5). */
  guidance?: number;
  /** Seed of the sampling noise (app.py: 42). */
  seed?: number;
  /** Run the reference UNet once, at the middle timestep (app.py's ref_acceleration; default false). */
  refAcceleration?: boolean;
  /** Try-on: composite onto the person outside the blurred mask (app.py's vt_repaint; default false). */
  repaint?: boolean;
  onStep?: (step: number, total: number) => void;
  /**
   * Called as each sampling phase (leffaSample's LeffaPhase) starts to run; with `lowMemory` also before the
   * schedule moves the parts for it ('moving'), so that the moves can be told apart from the phase's own work.
   */
  onPhase?: (phase: LeffaPhase, stage: 'moving' | 'running') => void;
  /**
   * Memory-saving schedule (default false): the preprocessing models leave the device, and while sampling only
   * the Leffa part the current phase runs is on it (VAE encoder, reference UNet, generative UNet, VAE decoder;
   * the others in host memory, see leffa-schedule.ts). Where Leffa loads in this run, only the VAE encoder's
   * weights are uploaded, the rest loads into host memory; after the run the parts stay where the schedule
   * left them (a later run without lowMemory brings them back). The same image, bit for bit; slower where
   * weights move.
   */
  lowMemory?: boolean;
  /**
   * Tiled VAE encoding and decoding (diffusers' enable_tiling): true (tiles of the largest size this adapter
   * runs), tile options, or false. Default: tiled only where the image does not fit the adapter in one piece.
   */
  vaeTiling?: boolean | VaeTilingOptions;
  /** Notes on how the run is set up (default console.log). */
  log?: (line: string) => void;
}

export interface ReleasedLeffaTryOnOptions extends ReleasedLeffaRunOptions {
  /** app.py's vt_garment_type (default upper_body). */
  garmentType?: GarmentCategory;
}

/** One prepared example: what the UNets receive and the images app.py shows for debugging. */
export interface ReleasedLeffaPrepared {
  /** LeffaTransform's output: the tensors' values, [1, C, H, W] each. */
  inputs: LeffaTransformArrays;
  /** The resize_and_center'ed images. */
  src: RgbImage;
  ref: RgbImage;
  /** The mask at the model size (255 = regenerate), before binarisation; app.py's second output. */
  mask: Uint8Array;
  /** The densepose condition image; app.py's third output. */
  densepose: RgbImage;
  /** Try-on: the parse map and keypoints at the parser size (null: no person found), and that size [H, W]. */
  parse?: { labels: Uint8Array; keypoints: [number, number][] | null; size: [number, number] };
  /** Where this run continued where app.py would stop. */
  warnings: string[];
}

export interface ReleasedLeffaResult {
  prepared: ReleasedLeffaPrepared;
  /** The generated image at the model size (repainted when asked). */
  image: RgbImage;
}

/**
 * run_openpose.OpenPose's keypoints: the first person's 18 parts through its candidate reordering loop
 * (ported as is: it is exact when the first person's candidates come first and in part order, as for one
 * person), missing parts at (0, 0), scaled back to pixels by the image size. Null when no person was found
 * (where app.py stops with an IndexError).
 */
export function leffaOpenPoseKeypoints(
  candidate: readonly (readonly number[])[],
  subset: readonly (readonly number[])[],
  width: number,
  height: number,
): [number, number][] | null {
  if (subset.length === 0) return null;
  const cand = candidate.map((c) => [c[0]! / width, c[1]! / height]);
  const sub = subset[0]!.slice(0, 18);
  for (let i = 0; i < 18; i++) {
    if (sub[i] === -1) {
      cand.splice(i, 0, [0, 0]);
      for (let j = i; j < 18; j++) if (sub[j] !== -1) sub[j]! += 1;
    } else if (sub[i] !== i) {
      cand.splice(i, 1);
      for (let j = i; j < 18; j++) if (sub[j] !== -1) sub[j]! -= 1;
    }
  }
  if (cand.length < 18)
    throw new Error(
      `OpenPose: the first person's keypoints could not be ordered (${cand.length} of 18 after run_openpose's reordering)`,
    );
  return cand.slice(0, 18).map(([x, y]) => [x! * width, y! * height]);
}

const chw01 = (img: RgbImage): T.Tensor => {
  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = img.data[3 * i + c]! / 255;
  return T.tensor(out, [3, img.height, img.width]);
};

/**
 * Applies a `vaeTiling` run option to the VAE for an [h, w] image; by default tiles (and says so) only where
 * the image does not fit the adapter in one piece.
 */
function configureVaeTiling(
  vae: AutoencoderKL,
  [h, w]: [number, number],
  setting: boolean | VaeTilingOptions | undefined,
  log: (line: string) => void = console.log,
): void {
  if (setting === false) {
    vae.disableTiling();
    return;
  }
  const limits = vaeDeviceLimits();
  const bytes = T.BYTES_PER_ELEMENT[vae.quant_conv.weight.dtype];
  if (typeof setting === 'object') vae.enableTiling(setting);
  else if (setting === true || !vaeFitsDevice(vae.config, h, w, bytes, limits)) {
    const size = vaeTileSizeFor(vae.config, bytes, limits);
    vae.enableTiling({ tileSampleSize: size });
    if (setting === undefined)
      log(
        `VAE: a ${h}x${w} image does not fit this adapter in one piece (storage binding limit ` +
          `${(limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB, one dispatch dimension); encoding and decoding in ` +
          `${size}x${size} tiles (diffusers' enable_tiling; slightly different from an untiled run)`,
      );
  }
}

/**
 * A lazily loaded model: loaded on the first `get` (with that call's request), the same promise after (a failed
 * load is retried); `release` frees it.
 */
class Lazy<M, Q = void> {
  private p: Promise<M> | null = null;
  constructor(
    private readonly load: (request?: Q) => Promise<M>,
    private readonly free: (m: M) => void,
  ) {}

  get(request?: Q): Promise<M> {
    this.p ??= this.load(request).catch((e) => {
      this.p = null;
      throw e;
    });
    return this.p;
  }

  /** Frees the model if it loaded (the next `get` loads it again). */
  async release(): Promise<void> {
    const p = this.p;
    this.p = null;
    if (p) this.free(await p.catch(() => null as M));
  }
}

export interface ReleasedLeffaOptions {
  /**
   * Model size [H, W] (default app.py's 1024x768; the parser and OpenPose run at half of it). Other sizes are for
   * small test models: the released ones were trained at 1024x768. Both sides must be even.
   */
  size?: [number, number];
}

/** A released Leffa model with app.py's preprocessing around it. */
export class ReleasedLeffa {
  readonly size: [number, number];
  private readonly leffa: Lazy<LeffaModel, LeffaLoadRequest>;
  private readonly densepose: Lazy<DensePosePredictor>;
  private readonly parsing: Lazy<LeffaHumanParsing> | null;
  private readonly openpose: Lazy<OpenPoseBody> | null;

  constructor(
    readonly model: ReleasedLeffaModel,
    sources: ReleasedLeffaSources,
    options: ReleasedLeffaOptions = {},
  ) {
    const [h, w] = options.size ?? RELEASED_LEFFA_SIZE;
    if (!(Number.isInteger(h) && Number.isInteger(w) && h >= 2 && w >= 2 && h % 2 === 0 && w % 2 === 0)) {
      throw new Error(`ReleasedLeffa: size must be even positive integers [height, width], got ${h}x${w}`);
    }
    if (model !== 'pose_transfer' && !(sources.parsing && sources.openpose))
      throw new Error(`ReleasedLeffa (${model}): try-on needs the human parsing and OpenPose sources`);
    this.size = [h, w];
    const free = (m: T.Module | null) => m?.dispose();
    this.leffa = new Lazy((request?: LeffaLoadRequest) => sources.leffa(request), free);
    this.densepose = new Lazy(sources.densepose, (p) => p?.model.dispose());
    this.parsing = sources.parsing ? new Lazy(sources.parsing, (p) => p?.dispose()) : null;
    this.openpose = sources.openpose ? new Lazy(sources.openpose, free) : null;
  }

  /**
   * Frees the preprocessing models (parsers, OpenPose, DensePose) that have loaded, e.g. between `prepare` and
   * `generate` where device memory is short; they load again when needed.
   */
  async releasePreprocessing(): Promise<void> {
    await Promise.all([this.densepose.release(), this.parsing?.release(), this.openpose?.release()]);
  }

  /** Frees every model that has loaded. */
  async dispose(): Promise<void> {
    await Promise.all([this.releasePreprocessing(), this.leffa.release()]);
  }

  /** The person's mask as app.py builds it at the model size (255 = regenerate), with the parse and keypoints. */
  private async tryOnMask(
    src: RgbImage,
    garmentType: GarmentCategory,
  ): Promise<{ mask: Uint8Array; parse: NonNullable<ReleasedLeffaPrepared['parse']>; warnings: string[] }> {
    const [H, W] = this.size;
    const [h, w] = [H / 2, W / 2];
    const small: RgbImage = { width: w, height: h, data: pilResize(src.data, H, W, 3, h, w, 'bicubic') };
    const parsing = await this.parsing!.get();
    const x = chw01(small);
    let labels: Uint8Array;
    try {
      labels = (await parsing.parse(x)).labels;
    } finally {
      x.dispose();
    }
    const openpose = await this.openpose!.get();
    const pose = await estimatePose(openpose, small);
    const keypoints = leffaOpenPoseKeypoints(pose.candidate, pose.subset, w, h);
    const category = this.model === 'dress_code' ? 'dc' : 'hd';
    // The mask code takes points in a 512-high frame (app.py's parser size) and scales them by h / 512.
    const frame = keypoints
      ? keypoints.map(([x, y]) => [(x * 512) / h, (y * 512) / h] as const)
      : new Array<null>(18).fill(null);
    const small255 = leffaAgnosticMask(labels, h, w, frame, garmentType, category);
    const warnings = keypoints
      ? []
      : ['OpenPose found no person in the person image: the mask has no arm strokes (app.py stops here)'];
    return {
      mask: pilResize(small255, h, w, 1, H, W, 'bicubic'),
      parse: { labels, keypoints, size: [h, w] },
      warnings,
    };
  }

  /** app.py up to LeffaTransform: the tensors' values the VAE and UNets receive, and the debug images. */
  async prepare(
    person: RgbImage,
    reference: RgbImage,
    garmentType: GarmentCategory = 'upper_body',
  ): Promise<ReleasedLeffaPrepared> {
    const [H, W] = this.size;
    const src = resizeAndCenter(person, H, W);
    const ref = resizeAndCenter(reference, H, W);
    let mask: Uint8Array;
    let parse: ReleasedLeffaPrepared['parse'];
    let warnings: string[] = [];
    if (this.model === 'pose_transfer') {
      mask = new Uint8Array(H * W).fill(255);
    } else {
      ({ mask, parse, warnings } = await this.tryOnMask(src, garmentType));
    }
    const predictor = await this.densepose.get();
    const densepose: RgbImage = { width: W, height: H, data: await predictor.leffaDensePose(src, this.model) };
    const kind = this.model === 'pose_transfer' ? 'pose_transfer' : 'virtual_tryon';
    const inputs = leffaTransform({ src, ref, mask, densepose }, kind);
    return { inputs, src, ref, mask, densepose, ...(parse ? { parse } : {}), warnings };
  }

  /** Leffa sampling on a prepared example, then do_repaint when asked. */
  async generate(prepared: ReleasedLeffaPrepared, options: ReleasedLeffaRunOptions = {}): Promise<RgbImage> {
    const steps = options.steps ?? 50;
    if (!(Number.isInteger(steps) && steps >= 1))
      throw new Error(`ReleasedLeffa: steps must be a positive integer, got ${steps}`);
    const guidance = options.guidance ?? 2.5;
    if (!(guidance >= 0)) throw new Error(`ReleasedLeffa: guidance must be >= 0, got ${guidance}`);
    // Low memory: the preprocessing models leave the device before Leffa loads, and Leffa loads (if it does
    // now) with only the first phase's part on the device.
    if (options.lowMemory) await this.releasePreprocessing();
    const leffa = await this.leffa.get(options.lowMemory ? { beforeLoad: leffaLowMemoryPlacement } : {});
    const schedule = leffaOffloadSchedule(leffa);
    // A normal run needs the whole model on the device (an earlier low-memory run may have left parts off it).
    if (!options.lowMemory) schedule.restore();
    const tilingBefore = leffa.vae.tiling;
    configureVaeTiling(leffa.vae, [prepared.inputs.height, prepared.inputs.width], options.vaeTiling, options.log);
    const t = leffaTransformTensors(prepared.inputs);
    const { onPhase, lowMemory } = options;
    const beforePhase =
      lowMemory || onPhase
        ? async (phase: LeffaPhase) => {
            if (lowMemory) {
              onPhase?.(phase, 'moving');
              await schedule.beforePhase(phase);
            }
            onPhase?.(phase, 'running');
          }
        : undefined;
    let y: T.Tensor;
    try {
      y = await leffaSample(
        leffa,
        { image: t.src, reference: t.ref, mask: t.mask, densepose: t.densepose },
        {
          steps,
          sampler: 'ddpm',
          guidanceScale: guidance,
          refAcceleration: options.refAcceleration ?? false,
          generator: new T.Generator(options.seed ?? 42),
          ...(options.onStep ? { onStep: options.onStep } : {}),
          ...(beforePhase ? { beforePhase } : {}),
        },
      );
    } finally {
      T.dispose(Object.values(t));
      leffa.vae.tiling = tilingBefore;
    }
    const values = await y.data();
    y.dispose();
    const { height: H, width: W } = prepared.inputs;
    const plane = H * W;
    const data = new Uint8Array(plane * 3);
    // latent_to_image + numpy_to_pil: (x / 2 + 0.5) clamped to [0, 1], x 255, rounded.
    for (let i = 0; i < plane; i++)
      for (let c = 0; c < 3; c++)
        data[3 * i + c] = Math.round(Math.min(1, Math.max(0, values[c * plane + i]! / 2 + 0.5)) * 255);
    const image: RgbImage = { width: W, height: H, data };
    return options.repaint ? leffaRepaint(prepared.src, image, prepared.inputs.mask) : image;
  }

  /** app.py's virtual try-on: `person` wears `garment`. */
  async tryon(
    person: RgbImage,
    garment: RgbImage,
    options: ReleasedLeffaTryOnOptions = {},
  ): Promise<ReleasedLeffaResult> {
    if (this.model === 'pose_transfer')
      throw new Error('ReleasedLeffa: this is the pose-transfer model; load viton_hd or dress_code for try-on');
    const prepared = await this.prepare(person, garment, options.garmentType ?? 'upper_body');
    return { prepared, image: await this.generate(prepared, options) };
  }

  /** app.py's pose transfer: `source`'s person re-rendered in `targetPose`'s pose. */
  async poseTransfer(
    targetPose: RgbImage,
    source: RgbImage,
    options: ReleasedLeffaRunOptions = {},
  ): Promise<ReleasedLeffaResult> {
    if (this.model !== 'pose_transfer')
      throw new Error(`ReleasedLeffa: this is the ${this.model} try-on model; load pose_transfer for pose transfer`);
    if (options.repaint)
      throw new Error('ReleasedLeffa: repaint is a try-on option (app.py passes it for try-on only)');
    const prepared = await this.prepare(targetPose, source);
    return { prepared, image: await this.generate(prepared, options) };
  }
}
