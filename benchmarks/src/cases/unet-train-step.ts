import * as T from '@leffa-webgpu/core';
import { TINY_UNET, UNet2DConditionModel } from '@leffa-webgpu/models';
import { type BenchCase, randomInput } from '../case.js';

const BATCH = 4;
const LATENT = [4, 16, 12] as const; // a 128x96 image's latent

/**
 * One training step of the tiny diffusers-style UNet Leffa trains here (blocks 32/64/64, attention in the
 * two upper levels): forward at a 16x12 latent, epsilon MSE, backward, AdamW step. There is no peer: the
 * oracle has no diffusers and tfjs has no such model, so the check is the harness's: the
 * result (the loss) must be finite. The
 * whole step is recorded into one batch and waited on once, as the training loop does.
 */
export const unetTrainStepCase: BenchCase = {
  name: `train step tiny UNet b${BATCH} ${LATENT[1]}x${LATENT[2]} latent`,
  profile: 'ci',
  inputs: () => [randomInput([BATCH, ...LATENT], 61), randomInput([BATCH, ...LATENT], 62)],
  ours: ([x, noise]) => unetRunner(x!, noise!, null),
  // The same step with every convolution on the implicit GEMM (no Winograd): the speedup of that choice.
  baseline: { label: 'implicit-GEMM convolutions only', impl: ([x, noise]) => unetRunner(x!, noise!, 'direct') },
};

/**
 * A model (same seeded initial weights every time) and optimizer of their own; `algorithm` forces the
 * convolution algorithm while a step records.
 */
function unetRunner(x: T.Tensor, noise: T.Tensor, algorithm: T.ConvAlgorithm | null) {
  T.manualSeed(61);
  const unet = new UNet2DConditionModel({ ...TINY_UNET, skipCrossAttention: true });
  const optimizer = new T.AdamW(unet.parameters(), { lr: 1e-4, weightDecay: 0 });
  const timesteps = Array.from({ length: BATCH }, (_, i) => 100 + 250 * i);
  const step = () => {
    const loss = T.mseLoss(unet.forward(x, timesteps).sample, noise);
    loss.backward();
    optimizer.step();
    optimizer.zeroGrad();
    return loss.detach();
  };
  return {
    run: () => {
      T.setConvAlgorithm(algorithm);
      try {
        return step();
      } finally {
        T.setConvAlgorithm(null);
      }
    },
    dispose: () => {
      optimizer.dispose();
      T.dispose(unet.parameters());
    },
  };
}
