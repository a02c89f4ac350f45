import * as T from '@leffa-webgpu/core';
import { AutoencoderKL, TINY_VAE } from '@leffa-webgpu/models';
import { type BenchCase, randomInput } from '../case.js';
import { lazyLayout, loadSeeded, seededParameters, torchSeededModule } from './seeded-module.js';

const [BATCH, HEIGHT, WIDTH] = [8, 64, 48];
const KL_WEIGHT = 1e-4;
const LR = 2e-3;

const parameterLayout = lazyLayout(() => new AutoencoderKL(TINY_VAE));

/**
 * One training step of the tiny VAE as VaeTrainer (packages/train) takes it: batch 8 of 64x48 crops, encode,
 * reparameterised posterior sample, decode, L1 + MSE reconstruction + 1e-4 KL, backward, gradient clipping to
 * norm 1, AdamW. The posterior noise is an input (so that PyTorch draws the same sample) and the weights are
 * seeded inputs loaded into both models. The PyTorch peer is the oracle's reference AutoencoderKL
 * (test/golden/torch_diffusion.py, diffusers' key names). The checked result is the loss followed by every
 * parameter's gradient (before clipping), from the first step; later timed steps update the weights.
 */
export const vaeTrainStepCase: BenchCase = {
  name: `train step tiny VAE b${BATCH} ${HEIGHT}x${WIDTH}`,
  profile: 'ci',
  inputs: () => [
    randomInput([BATCH, 3, HEIGHT, WIDTH], 71),
    randomInput([BATCH, TINY_VAE.latentChannels, HEIGHT / 8, WIDTH / 8], 72),
    ...seededParameters(parameterLayout()),
  ],
  ours: ([x, eps, ...weights]) => vaeRunner(x!, eps!, weights, null),
  // The same step with every convolution on the implicit GEMM (no Winograd): the speedup of that choice.
  baseline: {
    label: 'implicit-GEMM convolutions only',
    impl: ([x, eps, ...weights]) => vaeRunner(x!, eps!, weights, 'direct'),
  },
  // A getter: the parameter names come from a model, which needs the device (created after the cases load).
  get torch() {
    return torchSpec();
  },
  tol: 2e-3,
};

/** A model and optimizer of their own; `algorithm` forces the convolution algorithm while a step records. */
function vaeRunner(x: T.Tensor, eps: T.Tensor, weights: T.Tensor[], algorithm: T.ConvAlgorithm | null) {
  const vae = new AutoencoderKL(TINY_VAE);
  const params = loadSeeded(vae, parameterLayout(), weights);
  const optimizer = new T.AdamW(params, { lr: LR, weightDecay: 0 });
  const step = (): T.Tensor => {
    const dist = vae.encode(x);
    const z = T.add(dist.mean, T.mul(T.exp(T.mul(dist.logvar, 0.5)), eps));
    const recon = vae.decode(z);
    const reconstruction = T.add(T.l1Loss(recon, x), T.mseLoss(recon, x));
    const kl = T.div(T.mean(dist.kl()), HEIGHT * WIDTH * 3);
    const total = T.add(reconstruction, T.mul(kl, KL_WEIGHT));
    total.backward();
    const out = T.concat([T.reshape(total.detach(), [1]), ...params.map((p) => T.flatten(p.grad!))], 0);
    T.clipGradNorm(params, 1);
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

function torchSpec(): NonNullable<BenchCase['torch']> {
  return {
    setup: [
      ...torchSeededModule(
        `td.VAE(${JSON.stringify(TINY_VAE.blockOutChannels)}, ${TINY_VAE.layersPerBlock}, ${TINY_VAE.normNumGroups}, ${TINY_VAE.latentChannels})`,
        parameterLayout(),
        2,
      ),
      'vae = m',
      `opt = torch.optim.AdamW(params, lr=${LR}, weight_decay=0)`,
    ].join('\n'),
    run: [
      'with torch.enable_grad():',
      '    moments = vae.encode(x0)',
      '    mean, logvar = moments.chunk(2, dim=1)',
      '    logvar = logvar.clamp(-30, 20)',
      '    recon = vae.decode(mean + torch.exp(0.5 * logvar) * x1)',
      '    rec = F.l1_loss(recon, x0) + F.mse_loss(recon, x0)',
      `    kl = (0.5 * (mean.square() + logvar.exp() - logvar - 1).sum(dim=[1, 2, 3])).mean() / ${HEIGHT * WIDTH * 3}`,
      `    total = rec + ${KL_WEIGHT} * kl`,
      '    total.backward()',
      'out = torch.cat([total.detach().reshape(1)] + [p.grad.flatten() for p in params])',
      'torch.nn.utils.clip_grad_norm_(params, 1.0)',
      'opt.step()',
      'opt.zero_grad(set_to_none=False)',
      'return out',
    ].join('\n'),
  };
}
