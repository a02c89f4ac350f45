import * as T from '@leffa-webgpu/core';
import { type AttentionReport, flowToGrid } from '@leffa-webgpu/models';

/**
 * Exact flows in pixels ([H*W*2] per example, x then y) as a sampling grid [B, H, W, 2] in grid_sample's
 * normalised coordinates (align_corners=false), and how much each pixel counts [B, H, W, 1]: its weight (default
 * 1) where the flow is defined, 0 elsewhere.
 */
export function flowTargets(
  flows: readonly Float32Array[],
  valid: readonly Uint8Array[],
  height: number,
  width: number,
  weights: readonly (Float32Array | undefined)[] = [],
): { grid: T.Tensor; valid: T.Tensor } {
  const plane = height * width;
  const grid = new Float32Array(flows.length * plane * 2);
  const mask = new Float32Array(flows.length * plane);
  flows.forEach((f, b) => {
    if (f.length !== 2 * plane || valid[b]!.length !== plane)
      throw new Error(
        `flowTargets: example ${b} has a ${f.length / 2}-pixel flow and a ${valid[b]!.length}-pixel mask, expected ${plane} (${height}x${width})`,
      );
    const weight = weights[b];
    if (weight && weight.length !== plane)
      throw new Error(
        `flowTargets: example ${b} has ${weight.length} flow weights, expected ${plane} (${height}x${width})`,
      );
    for (let i = 0; i < plane; i++) {
      if (!valid[b]![i]) continue;
      const o = b * plane + i;
      grid[2 * o] = (2 * f[2 * i]! + 1) / width - 1;
      grid[2 * o + 1] = (2 * f[2 * i + 1]! + 1) / height - 1;
      mask[o] = weight ? weight[i]! : 1;
    }
  });
  return {
    grid: T.tensor(grid, [flows.length, height, width, 2]),
    valid: T.tensor(mask, [flows.length, height, width, 1]),
  };
}

/**
 * Supervised attention flow: the mean end-point distance (normalised coordinates) between each attn1 layer's
 * flow, upsampled and clamped exactly as the Leffa loss warps with it, and the exact flow, over the pixels
 * where the truth is defined (weighted by the target's pixel weights) and the samples whose weight is 1;
 * averaged over layers.
 *
 * Not part of Leffa. The paper fine-tunes Stable Diffusion, whose attention already roughly corresponds; the
 * tiny models here start from nearly uniform attention. The experiment uses this loss to build such a
 * roughly corresponding starting point, then compares training with and without the Leffa loss from it.
 */
export function flowSupervisionLoss(
  flows: readonly AttentionReport[],
  target: { grid: T.Tensor; valid: T.Tensor },
  sampleWeight?: readonly number[],
): T.Tensor {
  if (flows.length === 0)
    throw new Error('flowSupervisionLoss: no flow fields (request attention reports of kind "flow")');
  const [b, H, W] = target.grid.shape as [number, number, number, number];
  const weights = sampleWeight ?? Array.from({ length: b }, () => 1);
  if (weights.length !== b)
    throw new Error(`flowSupervisionLoss: ${weights.length} sample weights for a batch of ${b}`);
  const mask = T.mul(target.valid, T.tensor(weights, [b, 1, 1, 1]));
  const count = T.clamp(T.sum(mask), 1);
  const perLayer = flows.map((report) => {
    const grid = flowToGrid(report.value, report.height, report.width, H, W);
    // sqrt(|d|^2 + eps): the end-point distance with a finite gradient where it is 0.
    const dist = T.sqrt(T.add(T.sum(T.square(T.sub(grid, target.grid)), -1, true), 1e-8));
    return T.div(T.sum(T.mul(dist, mask)), count);
  });
  return T.div(
    perLayer.reduce((a, c) => T.add(a, c)),
    perLayer.length,
  );
}
