import * as T from '@leffa-webgpu/core';
import { TINY_UNET, UNet2DConditionModel } from '@leffa-webgpu/models';
import { type BenchCase, randomInput } from '../case.js';
import { lazyLayout, loadSeeded, seededParameters, torchSeededModule } from './seeded-module.js';

const BATCH = 4;
const LATENT = [4, 16, 12] as const; // a 128x96 image's latent
const CONFIG = { ...TINY_UNET, skipCrossAttention: true };
const TIMESTEPS = Array.from({ length: BATCH }, (_, i) => 100 + 250 * i);
const LR = 1e-4;
const parameterLayout = lazyLayout(() => new UNet2DConditionModel(CONFIG));

/**
 * One training step of the tiny diffusers-style UNet Leffa trains here (blocks 32/64/64, attention in the
 * two upper levels, Leffa's pass-through cross-attention): forward at a 16x12 latent, epsilon MSE, backward,
 * AdamW step, with seeded weights loaded into ours and the reference UNet of test/golden/torch_diffusion.py.
 * The checked result is the loss followed by every gradient (from the first step); the whole step is
 * recorded into one batch and waited on once, as the training loop does.
 */
export const unetTrainStepCase: BenchCase = {
  name: `train step tiny UNet b${BATCH} ${LATENT[1]}x${LATENT[2]} latent`,
  profile: 'ci',
  inputs: () => [
    randomInput([BATCH, ...LATENT], 61),
    randomInput([BATCH, ...LATENT], 62),
    ...seededParameters(parameterLayout()),
  ],
  ours: ([x, noise, ...weights]) => unetRunner(x!, noise!, weights, null),
  // The same step with every convolution on the implicit GEMM (no Winograd): the speedup of that choice.
  baseline: {
    label: 'implicit-GEMM convolutions only',
    impl: ([x, noise, ...weights]) => unetRunner(x!, noise!, weights, 'direct'),
  },
  get torch() {
    const c = CONFIG;
    const cfg = {
      in: c.inChannels,
      out: c.outChannels,
      boc: c.blockOutChannels,
      layers: c.layersPerBlock,
      heads: c.attentionHeads,
      groups: c.normNumGroups,
      cross: c.crossAttentionDim,
      down: c.downBlockTypes,
      up: c.upBlockTypes,
    };
    return {
      setup: [
        ...torchSeededModule(`td.UNet(${JSON.stringify(cfg)})`, parameterLayout(), 2),
        `opt = torch.optim.AdamW(params, lr=${LR}, weight_decay=0)`,
        `t = torch.tensor(${JSON.stringify(TIMESTEPS)})`,
      ].join('\n'),
      run: [
        'with torch.enable_grad():',
        '    loss = F.mse_loss(m(x0, t, {"mode": None}), x1)',
        '    loss.backward()',
        // attn2 (Leffa's skipped cross-attention) has no gradient, as in ours.
        'out = torch.cat([loss.detach().reshape(1)] + [p.grad.flatten() for p in params if p.grad is not None])',
        'opt.step()',
        'opt.zero_grad(set_to_none=False)',
        'return out',
      ].join('\n'),
    };
  },
  tol: 2e-3,
};

/** A model and optimizer of their own; `algorithm` forces the convolution algorithm while a step records. */
function unetRunner(x: T.Tensor, noise: T.Tensor, weights: T.Tensor[], algorithm: T.ConvAlgorithm | null) {
  const unet = new UNet2DConditionModel(CONFIG);
  const params = loadSeeded(unet, parameterLayout(), weights);
  const optimizer = new T.AdamW(params, { lr: LR, weightDecay: 0 });
  const step = () => {
    const loss = T.mseLoss(unet.forward(x, TIMESTEPS).sample, noise);
    loss.backward();
    const out = T.concat(
      [T.reshape(loss.detach(), [1]), ...params.filter((p) => p.grad).map((p) => T.flatten(p.grad!))],
      0,
    );
    optimizer.step();
    optimizer.zeroGrad();
    return out;
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
      T.dispose(params);
    },
  };
}
