import * as T from '@leffa-webgpu/core';
import { classifierFreeGuidance, flowField, leffaLoss } from '@leffa-webgpu/models';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

const OPS: Record<string, OpAdapter> = {
  // Inputs: q, k per layer, then reference, target, mask. The flows come from our fused flow-field kernel.
  leffa_loss: (xs, a) => {
    const layers = a.layers as [number, number][];
    const [reference, target, mask] = xs.slice(2 * layers.length) as [T.Tensor, T.Tensor, T.Tensor];
    const flows = layers.map(([height, width], i) => ({
      layer: `layer${i}`,
      height,
      width,
      value: flowField(xs[2 * i]!, xs[2 * i + 1]!, { height, width }, { tau: a.tau }),
    }));
    return leffaLoss(
      { flows, reference, target, mask, timesteps: a.timesteps },
      {
        ...(a.normalization ? { normalization: a.normalization } : {}),
        ...(a.distance ? { distance: a.distance } : {}),
      },
    );
  },
  // Leffa's pipeline.py guidance (the rescale defaults to the scale, as released).
  leffa_guidance: ([uncond, cond], a) => classifierFreeGuidance(uncond!, cond!, a.scale, a.rescale),
};

replayGoldenGroup('leffa', OPS);
