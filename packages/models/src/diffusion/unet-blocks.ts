import * as T from '@leffa-webgpu/core';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.js';
import { Transformer2DModel, type Transformer2DOptions } from './transformer.js';

const { ModuleList } = T.nn;

export interface BlockOptions {
  tembChannels: number;
  groups: number;
  eps: number;
  /** Present for cross-attention blocks. */
  transformer?: Transformer2DOptions;
}

const resnet = (inC: number, outC: number, o: BlockOptions) =>
  new ResnetBlock2D(inC, outC, { tembChannels: o.tembChannels, groups: o.groups, eps: o.eps });

const transformer = (channels: number, o: BlockOptions) => {
  if (!o.transformer) throw new Error('UNet block: cross-attention block without transformer options');
  const heads = o.transformer.heads;
  if (channels % heads !== 0) throw new Error(`UNet block: ${channels} channels do not split into ${heads} heads`);
  return new Transformer2DModel(channels, { ...o.transformer, dimHead: channels / heads });
};

/** DownBlock2D / CrossAttnDownBlock2D: resnets (each followed by a transformer when cross-attentional), then a stride-2 conv. */
export class DownBlock extends T.Module {
  readonly resnets: T.nn.ModuleList<ResnetBlock2D>;
  readonly attentions: T.nn.ModuleList<Transformer2DModel> | null;
  readonly downsamplers: T.nn.ModuleList<Downsample2D> | null;

  constructor(inC: number, outC: number, layers: number, downsample: boolean, o: BlockOptions) {
    super();
    this.resnets = this.addModule(
      'resnets',
      new ModuleList(Array.from({ length: layers }, (_, i) => resnet(i === 0 ? inC : outC, outC, o))),
    );
    this.attentions = o.transformer
      ? this.addModule('attentions', new ModuleList(Array.from({ length: layers }, () => transformer(outC, o))))
      : null;
    this.downsamplers = downsample
      ? this.addModule('downsamplers', new ModuleList([new Downsample2D(outC, false)]))
      : null;
  }

  /** Returns the output and the skip states handed to the up path. */
  forward(x: T.Tensor, temb: T.Tensor, context?: T.Tensor): { out: T.Tensor; skips: T.Tensor[] } {
    const skips: T.Tensor[] = [];
    let h = x;
    for (let i = 0; i < this.resnets.length; i++) {
      h = this.resnets.at(i).forward(h, temb);
      if (this.attentions) h = this.attentions.at(i).forward(h, context);
      skips.push(h);
    }
    if (this.downsamplers) {
      h = this.downsamplers.at(0).forward(h);
      skips.push(h);
    }
    return { out: h, skips };
  }
}

/** UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) per layer. */
export class MidBlock extends T.Module {
  readonly resnets: T.nn.ModuleList<ResnetBlock2D>;
  readonly attentions: T.nn.ModuleList<Transformer2DModel>;

  constructor(channels: number, o: BlockOptions, layers = 1) {
    super();
    this.attentions = this.addModule(
      'attentions',
      new ModuleList(Array.from({ length: layers }, () => transformer(channels, o))),
    );
    this.resnets = this.addModule(
      'resnets',
      new ModuleList(Array.from({ length: layers + 1 }, () => resnet(channels, channels, o))),
    );
  }

  forward(x: T.Tensor, temb: T.Tensor, context?: T.Tensor): T.Tensor {
    let h = this.resnets.at(0).forward(x, temb);
    for (let i = 0; i < this.attentions.length; i++) {
      h = this.attentions.at(i).forward(h, context);
      h = this.resnets.at(i + 1).forward(h, temb);
    }
    return h;
  }
}

/** UpBlock2D / CrossAttnUpBlock2D: each resnet takes the running state concatenated with one skip state. */
export class UpBlock extends T.Module {
  readonly resnets: T.nn.ModuleList<ResnetBlock2D>;
  readonly attentions: T.nn.ModuleList<Transformer2DModel> | null;
  readonly upsamplers: T.nn.ModuleList<Upsample2D> | null;

  /**
   * `prevC` channels come from below, `skipC[i]` from the i-th popped skip state (diffusers: the last one
   * has the channels of the next-deeper down block's input).
   */
  constructor(prevC: number, outC: number, skipC: number[], upsample: boolean, o: BlockOptions) {
    super();
    this.resnets = this.addModule(
      'resnets',
      new ModuleList(skipC.map((s, i) => resnet((i === 0 ? prevC : outC) + s, outC, o))),
    );
    this.attentions = o.transformer
      ? this.addModule('attentions', new ModuleList(skipC.map(() => transformer(outC, o))))
      : null;
    this.upsamplers = upsample ? this.addModule('upsamplers', new ModuleList([new Upsample2D(outC)])) : null;
  }

  /** Consumes skip states from the end of `skips`; `upsampleSize` is set when the next skip has an odd size. */
  forward(
    x: T.Tensor,
    skips: T.Tensor[],
    temb: T.Tensor,
    context?: T.Tensor,
    upsampleSize?: [number, number],
  ): T.Tensor {
    let h = x;
    for (let i = 0; i < this.resnets.length; i++) {
      const skip = skips.pop();
      if (!skip) throw new Error('UNet up block: ran out of skip connections');
      h = this.resnets.at(i).forward(T.concat([h, skip], 1), temb);
      if (this.attentions) h = this.attentions.at(i).forward(h, context);
    }
    return this.upsamplers ? this.upsamplers.at(0).forward(h, upsampleSize) : h;
  }
}
