import * as T from '@leffa-webgpu/core';
import type { AttentionReport } from '@leffa-webgpu/models';
import { onGrids, poolToGrid } from './grid-pool.js';

/**
 * Ours, not Leffa's: a loss only the reference path can lower. At each reported attn1 layer, the first C channels
 * of what the generative UNet's queries read from the reference tokens alone (the report's `readout`) must equal
 * the clean target latent there (average-pooled to the layer's grid), inside the inpainting mask. The masked
 * region's own tokens hold nothing of the garment, so only reference values that carry it, read at the right
 * places, lower this loss. No weights of its own: to_v learns to put the latent in those channels.
 *
 * `target` [B, C, h, w] (the clean latent), `mask` [B, 1, h, w] (1 = regenerated), `sampleWeight` one weight per
 * example (0 where the reference was dropped). The mean square error per masked position and channel, averaged
 * over layers: each layer once ('layers'), or each in proportion to its tokens ('tokens'), so that the layers on the
 * finest grid, the only ones fine enough for a garment's pattern, carry most of the loss.
 */
export type ReadoutWeighting = 'layers' | 'tokens';
export const READOUT_WEIGHTINGS: readonly ReadoutWeighting[] = ['layers', 'tokens'];

export function referenceReadoutLoss(
  reports: readonly AttentionReport[],
  target: T.Tensor,
  mask: T.Tensor,
  sampleWeight: readonly number[],
  weighting: ReadoutWeighting = 'layers',
): T.Tensor {
  const op = 'referenceReadoutLoss';
  const [b, c, h, w] = target.shape as [number, number, number, number];
  const withReadout = reports.filter((r) => r.readout);
  if (withReadout.length === 0) throw new Error(`${op}: no reports carry a readout (request { readout: true })`);
  if (sampleWeight.length !== b) throw new Error(`${op}: ${sampleWeight.length} sample weights for a batch of ${b}`);
  if (mask.shape.join() !== [b, 1, h, w].join())
    throw new Error(`${op}: mask ${T.formatShape(mask.shape)} must be [${b}, 1, ${h}, ${w}] like the target's planes`);
  const keep = T.tensor(sampleWeight, [b, 1, 1, 1]);
  // The pooled target and weights of each grid, shared by the layers on it.
  const onGrid = onGrids((height, width) => {
    const weight = T.mul(poolToGrid(mask, height, width), keep);
    return { target: poolToGrid(target, height, width), weight, count: T.mul(T.clamp(T.sum(weight), 1e-6), c) };
  });
  const perLayer = withReadout.map(({ layer, height, width, readout }) => {
    const [rb, n, inner] = readout!.shape as [number, number, number];
    if (rb !== b || n !== height * width || inner < c || height > h || width > w)
      throw new Error(
        `${op}: ${layer}'s readout ${T.formatShape(readout!.shape)} on a ${height}x${width} grid does not fit a ${T.formatShape(target.shape)} target (needs batch ${b}, ${height * width} tokens, at least ${c} channels, a grid no finer than ${h}x${w})`,
      );
    const slot = T.reshape(T.permute(T.narrow(readout!, 2, 0, c), [0, 2, 1]), [b, c, height, width]);
    const grid = onGrid(height, width);
    return T.div(T.sum(T.mul(T.square(T.sub(slot, grid.target)), grid.weight)), grid.count);
  });
  const shares = withReadout.map(({ height, width }) => (weighting === 'tokens' ? height * width : 1));
  const total = shares.reduce((a, b) => a + b, 0);
  return perLayer.map((l, i) => T.mul(l, shares[i]! / total)).reduce((a, l) => T.add(a, l));
}
