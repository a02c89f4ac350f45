import * as T from '@leffa-webgpu/core';
import { flowTargets } from './flow-supervision.js';

/**
 * One Leffa training example on the CPU (images HWC RGB uint8, masks H*W uint8 in {0, 1}).
 * - try-on: `source` is the person, `reference` the flat garment, `mask` the agnostic mask,
 *   `lossMask` the garment region on the person;
 * - pose transfer: `source` is the target-pose person, `reference` the source-pose person, `mask` all ones,
 *   `lossMask` the person foreground.
 */
export interface LeffaExample {
  height: number;
  width: number;
  source: Uint8Array;
  reference: Uint8Array;
  mask: Uint8Array;
  densepose: Uint8Array;
  lossMask: Uint8Array;
  /** Ground-truth flow from each source pixel to its location in the reference image, in pixels (x, y), H*W*2. */
  flow?: Float32Array;
  /** 1 where `flow` is defined. */
  flowValid?: Uint8Array;
  /** How much each pixel's flow counts in the supervised flow loss where it is defined (default 1), H*W. */
  flowWeight?: Float32Array;
}

export interface LeffaBatch {
  size: number;
  height: number;
  width: number;
  /** [B, 3, H, W] in [-1, 1]. */
  source: T.Tensor;
  reference: T.Tensor;
  densepose: T.Tensor;
  /** [B, 1, H, W] in {0, 1}. */
  mask: T.Tensor;
  lossMask: T.Tensor;
  /**
   * The exact flow as a sampling grid [B, H, W, 2] and how much each pixel counts [B, H, W, 1] (0 where the flow
   * is undefined), when asked for.
   */
  flow?: { grid: T.Tensor; valid: T.Tensor };
}

/** HWC uint8 images to one NCHW float array in [-1, 1]. */
export function imagesToNCHW(images: readonly Uint8Array[], height: number, width: number): Float32Array {
  const plane = height * width;
  const out = new Float32Array(images.length * 3 * plane);
  images.forEach((img, b) => {
    if (img.length !== plane * 3)
      throw new Error(
        `imagesToNCHW: image ${b} has ${img.length} bytes, expected ${plane * 3} (${height}x${width} RGB)`,
      );
    const base = b * 3 * plane;
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) out[base + c * plane + i] = img[3 * i + c]! / 127.5 - 1;
    }
  });
  return out;
}

function masksToN1HW(masks: readonly Uint8Array[], height: number, width: number): Float32Array {
  const plane = height * width;
  const out = new Float32Array(masks.length * plane);
  masks.forEach((m, b) => {
    if (m.length !== plane) throw new Error(`masks: mask ${b} has ${m.length} values, expected ${plane}`);
    for (let i = 0; i < plane; i++) out[b * plane + i] = m[i] ? 1 : 0;
  });
  return out;
}

function flowTargetsOf(
  examples: readonly LeffaExample[],
  height: number,
  width: number,
): { grid: T.Tensor; valid: T.Tensor } {
  const missing = examples.findIndex((e) => !e.flow || !e.flowValid);
  if (missing >= 0)
    throw new Error(`toBatch: example ${missing} has no exact flow (only synthetic examples carry one)`);
  return flowTargets(
    examples.map((e) => e.flow!),
    examples.map((e) => e.flowValid!),
    height,
    width,
    examples.map((e) => e.flowWeight),
  );
}

/**
 * Uploads a list of examples (all the same size) as one batch; with `flow`, also their exact flows as sampling
 * grids (for the supervised flow loss only, so not built otherwise).
 */
export function toBatch(examples: readonly LeffaExample[], options: { flow?: boolean } = {}): LeffaBatch {
  if (examples.length === 0) throw new Error('toBatch: empty batch');
  const { height, width } = examples[0]!;
  for (const e of examples) {
    if (e.height !== height || e.width !== width)
      throw new Error(`toBatch: mixed sizes ${e.height}x${e.width} and ${height}x${width}`);
  }
  const b = examples.length;
  const img = (pick: (e: LeffaExample) => Uint8Array) =>
    T.tensor(imagesToNCHW(examples.map(pick), height, width), [b, 3, height, width]);
  const msk = (pick: (e: LeffaExample) => Uint8Array) =>
    T.tensor(masksToN1HW(examples.map(pick), height, width), [b, 1, height, width]);
  return {
    size: b,
    height,
    width,
    source: img((e) => e.source),
    reference: img((e) => e.reference),
    densepose: img((e) => e.densepose),
    mask: msk((e) => e.mask),
    lossMask: msk((e) => e.lossMask),
    ...(options.flow ? { flow: flowTargetsOf(examples, height, width) } : {}),
  };
}
