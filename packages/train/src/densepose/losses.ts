/**
 * DensePose losses (detectron2's DensePoseChartLoss, adapted from annotated points to dense ground truth):
 *
 * - I: cross-entropy of the 25 part logits (background + 24 parts) over every pixel (mean), weight
 *   `part` = 1.0 (detectron2's ROI_DENSEPOSE_HEAD.PART_WEIGHTS).
 * - UV: smooth-L1 (beta 1, PyTorch's default as detectron2 calls it) between the U and V of the ground-truth
 *   part's channel and the true U, V, at foreground pixels only, weight `uv` = 0.01
 *   (ROI_DENSEPOSE_HEAD.POINT_REGRESSION_WEIGHTS). detectron2 sums this term over its annotated points
 *   (reduction 'sum', ~100 points per person); here `uvReduction: 'sum'` (default) sums over the foreground
 *   pixels of each image and averages over the images, so the term does not grow with the batch size;
 *   'mean' averages over foreground pixels instead (then raise `uv` to ~1).
 *
 * Not reproduced: the coarse foreground segmentation term (ROI_DENSEPOSE_HEAD.INDEX_WEIGHTS 5.0 on the ROI's
 * mask); the network has no coarse branch, the 25-way I map covers the background.
 */
import * as T from '@leffa-webgpu/core';
import { DENSEPOSE_CLASSES, DENSEPOSE_PARTS, type DensePoseOutput } from '@leffa-webgpu/models';

export interface DensePoseLossWeights {
  /** Part-index cross-entropy (detectron2 PART_WEIGHTS, 1.0). */
  part: number;
  /** U/V smooth-L1 (detectron2 POINT_REGRESSION_WEIGHTS, 0.01). */
  uv: number;
}

export const DENSEPOSE_LOSS_WEIGHTS: DensePoseLossWeights = { part: 1, uv: 0.01 };

export interface DensePoseTargets {
  /** int32 [N, H, W] part index, 0 = background, 1..24. */
  parts: T.Tensor;
  /** float [N, H, W] ground-truth U, V in [0, 1] (ignored on background). */
  u: T.Tensor;
  v: T.Tensor;
}

export interface DensePoseLossOptions {
  weights?: DensePoseLossWeights;
  /** 'sum': per-image sum over foreground pixels, averaged over images (default, as detectron2's sum); 'mean': mean over foreground pixels. */
  uvReduction?: 'sum' | 'mean';
  /** Smooth-L1 beta (1). */
  beta?: number;
}

export interface DensePoseLosses {
  /** part * partLoss + uv * uvLoss. */
  total: T.Tensor;
  /** Unweighted terms. */
  part: T.Tensor;
  uv: T.Tensor;
}

const upsampleTo = (x: T.Tensor, h: number, w: number) =>
  x.shape[2] === h && x.shape[3] === w ? x : T.interpolate(x, { size: [h, w], mode: 'bilinear' });

/**
 * The DensePose objective of one batch; outputs at stride 4 (or any size) are upsampled (bilinear) to the
 * targets' H x W first.
 */
export function densePoseLoss(
  out: DensePoseOutput,
  targets: DensePoseTargets,
  options: DensePoseLossOptions = {},
): DensePoseLosses {
  const op = 'densePoseLoss';
  const { parts, u, v } = targets;
  if (parts.dtype !== 'int32' || parts.rank !== 3)
    throw new Error(`${op}: parts must be int32 [N, H, W], got ${parts.dtype} ${T.formatShape(parts.shape)}`);
  const [N, H, W] = parts.shape as [number, number, number];
  for (const [name, t] of [
    ['u', u],
    ['v', v],
  ] as const) {
    if (t.dtype !== 'float32' || t.shape.join() !== parts.shape.join())
      throw new Error(
        `${op}: ${name} must be float32 ${T.formatShape(parts.shape)} like parts, got ${t.dtype} ${T.formatShape(t.shape)}`,
      );
  }
  const expect = (name: string, t: T.Tensor, c: number) => {
    if (t.rank !== 4 || t.shape[0] !== N || t.shape[1] !== c)
      throw new Error(
        `${op}: ${name} must be [${N}, ${c}, h, w] for targets ${T.formatShape(parts.shape)}, got ${T.formatShape(t.shape)}`,
      );
  };
  expect('I', out.I, DENSEPOSE_CLASSES);
  expect('U', out.U, DENSEPOSE_PARTS);
  expect('V', out.V, DENSEPOSE_PARTS);
  const weights = options.weights ?? DENSEPOSE_LOSS_WEIGHTS;
  const beta = options.beta ?? 1;

  const part = T.crossEntropy(upsampleTo(out.I, H, W), parts);
  // The ground-truth part's channel: one-hot of (part - 1); background rows land on channel 0 and are masked.
  const { fg, hot } = T.noGrad(() => {
    const pf = T.cast(parts, 'float32');
    const channel = T.cast(T.clamp(T.sub(pf, 1), 0), 'int32');
    return { fg: T.gt(pf, 0), hot: T.permute(T.oneHot(channel, DENSEPOSE_PARTS), [0, 3, 1, 2]) };
  });
  const at = (t: T.Tensor) => T.sum(T.mul(upsampleTo(t, H, W), hot), [1]);
  const du = T.smoothL1Loss(at(out.U), u, { beta, reduction: 'none' });
  const dv = T.smoothL1Loss(at(out.V), v, { beta, reduction: 'none' });
  const sum = T.sum(T.mul(T.add(du, dv), fg));
  const uv = (options.uvReduction ?? 'sum') === 'sum' ? T.div(sum, N) : T.div(sum, T.clamp(T.sum(fg), 1));
  const total = T.add(T.mul(part, weights.part), T.mul(uv, weights.uv));
  return { total, part, uv };
}
