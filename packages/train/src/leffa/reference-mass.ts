import * as T from '@leffa-webgpu/core';
import type { AttentionReport } from '@leffa-webgpu/models';
import { onGrids, poolToGrid } from './grid-pool.js';

/**
 * Ours, not Leffa's: inside the inpainting mask, the generative UNet's queries should take what they read from the
 * reference, not from their own tokens, which hold nothing of the garment (or, for pose transfer, of the person in
 * the new pose). The flow and readout losses shape where queries look among the reference keys, but in the layer's
 * joint softmax over [own; reference] keys the own keys can still take most of the mass, and then the UNet never
 * sees what the queries found. This loss is -log of the reference's share of that softmax, sigmoid(logit) for each
 * report's `referenceLogit` [B, heads, N], averaged over heads, masked positions (the mask average-pooled to the
 * layer's grid) and kept examples, then over layers.
 *
 * `mask` [B, 1, h, w] (1 = regenerated), `sampleWeight` one weight per example (0 where the reference was dropped:
 * a blank reference has nothing to read).
 */
export function referenceMassLoss(
  reports: readonly AttentionReport[],
  mask: T.Tensor,
  sampleWeight: readonly number[],
): T.Tensor {
  const op = 'referenceMassLoss';
  const [b, , h, w] = mask.shape as [number, number, number, number];
  const withLogit = reports.filter((r) => r.referenceLogit);
  if (withLogit.length === 0)
    throw new Error(`${op}: no reports carry a referenceLogit (request { referenceMass: true })`);
  if (sampleWeight.length !== b) throw new Error(`${op}: ${sampleWeight.length} sample weights for a batch of ${b}`);
  const keep = T.tensor(sampleWeight, [b, 1, 1, 1]);
  // Each grid's weights (the pooled mask of kept examples) and their total, shared by the layers on it.
  const onGrid = onGrids((height, width) => {
    const weight = T.reshape(T.mul(poolToGrid(mask, height, width), keep), [b, 1, height * width]);
    return { weight, count: T.clamp(T.sum(weight), 1e-6) };
  });
  const perLayer = withLogit.map(({ layer, height, width, referenceLogit }) => {
    const [lb, heads, n] = referenceLogit!.shape as [number, number, number];
    if (lb !== b || n !== height * width || height > h || width > w)
      throw new Error(
        `${op}: ${layer}'s referenceLogit ${T.formatShape(referenceLogit!.shape)} on a ${height}x${width} grid does not fit a ${T.formatShape(mask.shape)} mask`,
      );
    const { weight, count } = onGrid(height, width);
    // -log sigmoid(x) = softplus(-x), stable for either sign.
    const nll = T.softplus(T.neg(referenceLogit!));
    return T.div(T.sum(T.mul(nll, weight)), T.mul(count, heads));
  });
  return T.div(
    perLayer.reduce((a, l) => T.add(a, l)),
    perLayer.length,
  );
}
