import { type Conv2dOptions, type ConvTranspose2dOptions, conv2d, convTranspose2d } from '../ops/conv.js';
import type { Generator } from '../ops/random.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorModule } from './layers.js';
import { uniformInit } from './layers.js';
import { Module } from './module.js';

type Pair = number | readonly [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

export interface Conv2dModuleOptions extends Conv2dOptions {
  bias?: boolean;
  generator?: Generator;
}

/** Conv2d with weight [out, in / groups, kh, kw] and bias [out], PyTorch's default init and key names. */
export class Conv2d extends Module implements TensorModule {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    readonly options: Conv2dModuleOptions = {},
  ) {
    super();
    const [kh, kw] = pair(kernelSize);
    const groups = options.groups ?? 1;
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new Error(`Conv2d: groups ${groups} must divide ${inChannels} input and ${outChannels} output channels`);
    }
    const fanIn = (inChannels / groups) * kh * kw;
    this.weight = this.addParameter(
      'weight',
      uniformInit([outChannels, inChannels / groups, kh, kw], fanIn, options.generator),
    );
    this.bias = this.addParameter(
      'bias',
      options.bias === false ? null : uniformInit([outChannels], fanIn, options.generator),
    );
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias ?? undefined, this.options);
  }
}

export interface ConvTranspose2dModuleOptions extends ConvTranspose2dOptions {
  bias?: boolean;
  generator?: Generator;
}

/** ConvTranspose2d with weight [in, out / groups, kh, kw] (PyTorch's layout) and bias [out]. */
export class ConvTranspose2d extends Module implements TensorModule {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    readonly options: ConvTranspose2dModuleOptions = {},
  ) {
    super();
    const [kh, kw] = pair(kernelSize);
    const groups = options.groups ?? 1;
    // PyTorch computes fan-in from weight.shape[1] * kh * kw for transposed convolutions.
    const fanIn = (outChannels / groups) * kh * kw;
    this.weight = this.addParameter(
      'weight',
      uniformInit([inChannels, outChannels / groups, kh, kw], fanIn, options.generator),
    );
    this.bias = this.addParameter(
      'bias',
      options.bias === false ? null : uniformInit([outChannels], fanIn, options.generator),
    );
  }

  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight, this.bias ?? undefined, this.options);
  }
}
