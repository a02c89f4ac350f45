import * as T from '@leffa-webgpu/core';
import { ResnetBlock2D, SD15_UNET, Transformer2DModel } from '@leffa-webgpu/models';
import { type BenchCase, type HostTensor, randomInput } from '../case.js';
import { type ParameterLayout, lazyLayout, loadSeeded, seededParameters, torchSeededModule } from './seeded-module.js';

const [HEIGHT, WIDTH] = [64, 48]; // the latent of a 512x384 image, Leffa's released size
const CHANNELS = SD15_UNET.blockOutChannels[0]!;
const TEMB = CHANNELS * 4;
const GROUPS = SD15_UNET.normNumGroups;
const HEADS = SD15_UNET.attentionHeads as number;

interface Block {
  name: string;
  build: () => T.Module;
  /** Ours: the block's output for input x (and the extra inputs, e.g. the timestep embedding). */
  forward: (m: T.Module, x: T.Tensor, extra: T.Tensor[]) => T.Tensor;
  /** Extra seeded inputs after x and the output gradient. */
  extra: () => HostTensor[];
  /** PyTorch: the constructor of test/golden/torch_diffusion.py's block, and its call on x0 (extras x2...). */
  torchConstruct: string;
  torchCall: string;
  flops: number;
}

/**
 * One SD1.5 UNet block at the first level (320 channels) on a 64x48 latent, forward and backward with a seeded
 * output gradient: ours against the reference block of test/golden/torch_diffusion.py (same seeded weights).
 * The checked result is the input gradient followed by every parameter gradient.
 */
function blockCase({ name, build, forward, extra, torchConstruct, torchCall, flops }: Block): BenchCase {
  const layout = lazyLayout(build);
  const shape = [1, CHANNELS, HEIGHT, WIDTH];
  const nExtra = extra().length;
  return {
    name: `SD1.5 ${name} ${HEIGHT}x${WIDTH} latent fwd+bwd`,
    profile: 'full',
    inputs: () => [randomInput(shape, 81), randomInput(shape, 82), ...extra(), ...seededParameters(layout())],
    flops,
    ours: ([x, g, ...rest]) => blockRunner(build, layout(), x!, g!, rest.slice(0, nExtra), rest.slice(nExtra), forward),
    get torch() {
      return {
        setup: torchSeededModule(torchConstruct, layout(), 2 + nExtra).join('\n'),
        run: [
          'xx = x0.detach().requires_grad_(True)',
          'for p in params: p.grad = None',
          'with torch.enable_grad():',
          `    ${torchCall}.backward(x1)`,
          'return torch.cat([xx.grad.flatten()] + [p.grad.flatten() for p in params if p.grad is not None])',
        ].join('\n'),
      };
    },
    tol: 2e-3,
  };
}

function blockRunner(
  build: () => T.Module,
  layout: ParameterLayout,
  x: T.Tensor,
  g: T.Tensor,
  extra: T.Tensor[],
  weights: T.Tensor[],
  forward: Block['forward'],
) {
  const m = build();
  const params = loadSeeded(m, layout, weights);
  return {
    run: () => {
      const xx = x.detach();
      xx.requiresGrad = true;
      forward(m, xx, extra).backward(g);
      const out = T.concat([T.flatten(xx.grad!), ...params.filter((p) => p.grad).map((p) => T.flatten(p.grad!))], 0);
      m.zeroGrad();
      return out;
    },
    dispose: () => m.dispose(),
  };
}

/** Multiply-adds x 2 of a 3x3 same-size convolution over the latent, times 3 for forward and both gradients. */
const conv3x3FwdBwd = 3 * 2 * HEIGHT * WIDTH * CHANNELS * CHANNELS * 9;
const tokens = HEIGHT * WIDTH;

export const sd15BlockCases: BenchCase[] = [
  blockCase({
    name: 'ResnetBlock2D 320',
    build: () => new ResnetBlock2D(CHANNELS, CHANNELS, { tembChannels: TEMB, groups: GROUPS, eps: SD15_UNET.normEps }),
    forward: (m, x, [temb]) => (m as ResnetBlock2D).forward(x, T.silu(temb!)),
    extra: () => [randomInput([1, TEMB], 83)],
    torchConstruct: `td.ResnetBlock2D(${CHANNELS}, ${CHANNELS}, ${TEMB}, ${GROUPS}, ${SD15_UNET.normEps})`,
    torchCall: 'm(xx, x2)',
    flops: 2 * conv3x3FwdBwd,
  }),
  blockCase({
    name: `Transformer2DModel 320 h${HEADS}`,
    build: () =>
      new Transformer2DModel(CHANNELS, {
        heads: HEADS,
        dimHead: CHANNELS / HEADS,
        crossAttentionDim: SD15_UNET.crossAttentionDim,
        skipCrossAttention: true,
        layers: 1,
        groups: GROUPS,
      }),
    forward: (m, x) => (m as Transformer2DModel).forward(x),
    extra: () => [],
    torchConstruct: `td.Transformer2DModel(${CHANNELS}, ${HEADS}, ${SD15_UNET.crossAttentionDim}, ${GROUPS})`,
    torchCall: 'm(xx, {"mode": None})',
    // Self-attention (q k^T and p v) plus the token projections (q, k, v, out, two 1x1 convs, GEGLU 8c and 4c
    // wide), forward and both gradients.
    flops: 3 * (4 * tokens * tokens * CHANNELS + 2 * tokens * CHANNELS * CHANNELS * (6 + 8 + 4)),
  }),
];
