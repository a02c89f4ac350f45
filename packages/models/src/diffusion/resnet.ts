import * as T from '@leffa-webgpu/core';
import { blockScope } from './reference.js';

const { Conv2d, GroupNorm, Linear } = T.nn;

export interface ResnetOptions {
  /** Channels of the timestep embedding (UNet); omitted for the VAE. */
  tembChannels?: number;
  groups: number;
  eps: number;
}

/**
 * diffusers' ResnetBlock2D: GroupNorm -> SiLU -> conv3x3 (+ projected timestep embedding) -> GroupNorm ->
 * SiLU -> conv3x3, plus a 1x1 `conv_shortcut` when the channel count changes.
 */
export class ResnetBlock2D extends T.Module {
  readonly norm1: T.nn.GroupNorm;
  readonly conv1: T.nn.Conv2d;
  readonly time_emb_proj: T.nn.Linear | null;
  readonly norm2: T.nn.GroupNorm;
  readonly conv2: T.nn.Conv2d;
  readonly conv_shortcut: T.nn.Conv2d | null;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    options: ResnetOptions,
  ) {
    super();
    this.norm1 = this.addModule('norm1', new GroupNorm(options.groups, inChannels, { eps: options.eps }));
    this.conv1 = this.addModule('conv1', new Conv2d(inChannels, outChannels, 3, { padding: 1 }));
    this.time_emb_proj = options.tembChannels
      ? this.addModule('time_emb_proj', new Linear(options.tembChannels, outChannels))
      : null;
    this.norm2 = this.addModule('norm2', new GroupNorm(options.groups, outChannels, { eps: options.eps }));
    this.conv2 = this.addModule('conv2', new Conv2d(outChannels, outChannels, 3, { padding: 1 }));
    this.conv_shortcut =
      inChannels !== outChannels ? this.addModule('conv_shortcut', new Conv2d(inChannels, outChannels, 1)) : null;
  }

  /** `tembActivated` is silu(temb), computed once per UNet step and shared by every block. */
  forward(x: T.Tensor, tembActivated?: T.Tensor): T.Tensor {
    return blockScope(() => this.compute(x, tembActivated));
  }

  private compute(x: T.Tensor, tembActivated?: T.Tensor): T.Tensor {
    let h = this.conv1.forward(this.norm1.forwardSilu(x));
    if (this.time_emb_proj) {
      if (!tembActivated) throw new Error('ResnetBlock2D: this block needs a timestep embedding');
      const t = this.time_emb_proj.forward(tembActivated);
      h = T.add(h, T.reshape(t, [t.shape[0]!, t.shape[1]!, 1, 1]));
    }
    h = this.conv2.forward(this.norm2.forwardSilu(h));
    const skip = this.conv_shortcut ? this.conv_shortcut.forward(x) : x;
    return T.add(skip, h);
  }
}

/** Stride-2 3x3 convolution (`conv`); the VAE pads (0, 1, 0, 1) first instead of padding 1 on every side. */
export class Downsample2D extends T.Module {
  readonly conv: T.nn.Conv2d;

  constructor(
    channels: number,
    private readonly asymmetricPad: boolean,
  ) {
    super();
    this.conv = this.addModule(
      'conv',
      new Conv2d(channels, channels, 3, { stride: 2, padding: asymmetricPad ? 0 : 1 }),
    );
  }

  forward(x: T.Tensor): T.Tensor {
    return this.conv.forward(this.asymmetricPad ? T.pad(x, [0, 1, 0, 1]) : x);
  }
}

/** Nearest-neighbour upsampling (x2, or to an explicit size for odd skip shapes) followed by a 3x3 `conv`. */
export class Upsample2D extends T.Module {
  readonly conv: T.nn.Conv2d;

  constructor(channels: number) {
    super();
    this.conv = this.addModule('conv', new Conv2d(channels, channels, 3, { padding: 1 }));
  }

  forward(x: T.Tensor, size?: [number, number]): T.Tensor {
    const up = size
      ? T.interpolate(x, { size, mode: 'nearest' })
      : T.interpolate(x, { scaleFactor: 2, mode: 'nearest' });
    return this.conv.forward(up);
  }
}
