import * as T from '@leffa-webgpu/core';
import type { AttentionReport } from './reference.js';

export interface LeffaLossOptions {
  /** 'smoothL1' (Leffa's released training code, beta 1) or 'l2' (the squared error of the paper's formula). */
  distance?: 'l2' | 'smoothL1';
  /**
   * How the per-pixel distances are averaged. 'released' (default, Leffa's training code): each sample's mean over
   * C x H x W of the whole image (pixels outside the mask count as zeros), averaged over layers, then over the
   * whole batch with inactive samples counting as zeros. 'maskArea': the sum over the active samples' masked
   * pixels divided by their area x C, a stronger term by 1 / (mask fraction x active fraction).
   */
  normalization?: 'released' | 'maskArea';
  /** Only samples with a timestep below this contribute (the paper: 500). */
  maxTimestep?: number;
}

export interface LeffaLossInputs {
  /** Flow fields [B, N, 2] from the generative UNet's attn1 layers (target queries x reference keys). */
  flows: readonly AttentionReport[];
  /** Reference image [B, 3, H, W] in [-1, 1] (the garment for try-on, the source person for pose transfer). */
  reference: T.Tensor;
  /** Target image [B, 3, H, W] in [-1, 1]. */
  target: T.Tensor;
  /** Where the loss applies [B, 1, H, W]: the garment region (try-on) or the person foreground (pose transfer). */
  mask: T.Tensor;
  /** Each sample's diffusion timestep. */
  timesteps: readonly number[];
  /** Per-sample 0/1 weight on top of the timestep rule (e.g. 0 where the reference was dropped for CFG). */
  sampleWeight?: readonly number[];
}

/** A flow [B, h*w, 2] upsampled bilinearly to the image size as a grid [B, H, W, 2], clamped to [-1, 1]. */
export function flowToGrid(
  flow: T.Tensor,
  height: number,
  width: number,
  imageHeight: number,
  imageWidth: number,
): T.Tensor {
  const b = flow.shape[0]!;
  const field = T.permute(T.reshape(flow, [b, height, width, 2]), [0, 3, 1, 2]);
  const up = T.interpolate(field, { size: [imageHeight, imageWidth], mode: 'bilinear', alignCorners: false });
  return T.clamp(T.permute(up, [0, 2, 3, 1]), -1, 1);
}

/** The reference image warped by one layer's flow (bilinear, zeros padding, align_corners=false). */
export function warpByFlow(reference: T.Tensor, report: AttentionReport): T.Tensor {
  const [, , H, W] = reference.shape as [number, number, number, number];
  const grid = flowToGrid(report.value, report.height, report.width, H, W);
  return T.gridSample(reference, grid, { mode: 'bilinear', paddingMode: 'zeros', alignCorners: false });
}

/**
 * The Leffa loss (Zhou et al. 2025): for each attn1 flow field, warp the reference image by the flow and
 * penalise its distance to the target inside the mask, averaged over layers. Samples with t >= maxTimestep
 * (or weight 0) contribute zero; the result is a scalar. The defaults follow Leffa's released training code:
 * smooth L1 between warped x mask and target x mask, averaged as `normalization: 'released'` describes.
 */
export function leffaLoss(inputs: LeffaLossInputs, options: LeffaLossOptions = {}): T.Tensor {
  const { flows, reference, target, mask, timesteps } = inputs;
  const maxT = options.maxTimestep ?? 500;
  const normalization = options.normalization ?? 'released';
  const distance = options.distance ?? 'smoothL1';
  if (flows.length === 0) throw new Error('leffaLoss: no flow fields (request attention reports of kind "flow")');
  if (normalization !== 'released' && normalization !== 'maskArea')
    throw new Error(`leffaLoss: normalization must be 'released' or 'maskArea', got '${normalization}'`);
  if (distance !== 'smoothL1' && distance !== 'l2')
    throw new Error(`leffaLoss: distance must be 'smoothL1' or 'l2', got '${distance}'`);
  const b = reference.shape[0]!;
  if (timesteps.length !== b) throw new Error(`leffaLoss: ${timesteps.length} timesteps for a batch of ${b}`);
  const weights = timesteps.map((t, i) => (t < maxT ? 1 : 0) * (inputs.sampleWeight?.[i] ?? 1));
  const active = T.tensor(weights, [b, 1, 1, 1]);
  const maskedTarget = T.mul(target, mask);
  const distanceOf = (warped: T.Tensor) => {
    const pred = T.mul(warped, mask);
    return distance === 'smoothL1'
      ? T.smoothL1Loss(pred, maskedTarget, { beta: 1, reduction: 'none' })
      : T.square(T.sub(pred, maskedTarget));
  };
  const perLayer = flows.map((report) => {
    const dist = T.mul(distanceOf(warpByFlow(reference, report)), active);
    if (normalization === 'released') return T.mean(dist); // = mean over B of each sample's C x H x W mean
    // Masked pixels x channels of the active samples (at least 1, so an all-inactive batch gives exactly 0).
    const count = T.clamp(T.mul(T.sum(T.mul(mask, active)), reference.shape[1]!), 1);
    return T.div(T.sum(dist), count);
  });
  return T.div(
    perLayer.reduce((a, c) => T.add(a, c)),
    perLayer.length,
  );
}
