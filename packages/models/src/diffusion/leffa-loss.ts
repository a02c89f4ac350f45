import * as T from '@leffa-webgpu/core';
import type { AttentionReport } from './reference.js';

export interface LeffaLossOptions {
  /** 'l2' (the paper) or 'smoothL1'. */
  distance?: 'l2' | 'smoothL1';
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
export function flowToGrid(flow: T.Tensor, height: number, width: number, imageHeight: number, imageWidth: number): T.Tensor {
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
 * (or weight 0) do not contribute; the result is a scalar (0 when no sample qualifies).
 */
export function leffaLoss(inputs: LeffaLossInputs, options: LeffaLossOptions = {}): T.Tensor {
  const { flows, reference, target, mask, timesteps } = inputs;
  const maxT = options.maxTimestep ?? 500;
  if (flows.length === 0) throw new Error('leffaLoss: no flow fields (request attention reports of kind "flow")');
  const b = reference.shape[0]!;
  if (timesteps.length !== b) throw new Error(`leffaLoss: ${timesteps.length} timesteps for a batch of ${b}`);
  const weights = timesteps.map((t, i) => (t < maxT ? 1 : 0) * (inputs.sampleWeight?.[i] ?? 1));
  const active = T.tensor(weights, [b, 1, 1, 1]);
  const weightedMask = T.mul(mask, active);
  // Normaliser: masked pixels times channels (at least 1, so an all-inactive batch gives exactly 0).
  const count = T.clamp(T.mul(T.sum(weightedMask), reference.shape[1]!), 1);
  const perLayer = flows.map((report) => {
    const diff = T.sub(warpByFlow(reference, report), target);
    const dist = options.distance === 'smoothL1' ? T.smoothL1Loss(diff, T.zerosLike(diff), { beta: 1, reduction: 'none' }) : T.square(diff);
    return T.div(T.sum(T.mul(dist, weightedMask)), count);
  });
  return T.div(perLayer.reduce((a, c) => T.add(a, c)), perLayer.length);
}
