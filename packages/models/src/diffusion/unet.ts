import * as T from '@leffa-webgpu/core';
import { type AttentionReportRequest, ReferenceContext, type ReferenceMode } from './reference.js';
import { BasicTransformerBlock } from './transformer.js';
import { type BlockOptions, DownBlock, MidBlock, UpBlock } from './unet-blocks.js';

const { Conv2d, GroupNorm, Linear } = T.nn;

export type DownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UpBlockType = 'UpBlock2D' | 'CrossAttnUpBlock2D';

/** The subset of diffusers' UNet2DConditionModel config that SD 1.5 and Leffa use (camelCase). */
export interface UNetConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  downBlockTypes: DownBlockType[];
  upBlockTypes: UpBlockType[];
  layersPerBlock: number;
  /** Heads per attention (diffusers' SD 1.5 config calls this attention_head_dim = 8). */
  attentionHeads: number;
  crossAttentionDim: number;
  normNumGroups: number;
  normEps: number;
  flipSinToCos: boolean;
  freqShift: number;
  transformerLayersPerBlock: number;
  /** Leffa: cross-attention replaced by a pass-through (x + norm2(x)). */
  skipCrossAttention: boolean;
}

export const SD15_UNET: UNetConfig = {
  inChannels: 4,
  outChannels: 4,
  blockOutChannels: [320, 640, 1280, 1280],
  downBlockTypes: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  upBlockTypes: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  layersPerBlock: 2,
  attentionHeads: 8,
  crossAttentionDim: 768,
  normNumGroups: 32,
  normEps: 1e-5,
  flipSinToCos: true,
  freqShift: 0,
  transformerLayersPerBlock: 1,
  skipCrossAttention: true,
};

/** A small UNet of the same layout for tests and CI training (seconds per step on lavapipe). */
export const TINY_UNET: UNetConfig = {
  ...SD15_UNET,
  blockOutChannels: [32, 64, 64],
  downBlockTypes: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  upBlockTypes: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  layersPerBlock: 1,
  attentionHeads: 2,
  crossAttentionDim: 32,
  normNumGroups: 8,
};

export interface UNetOutput {
  sample: T.Tensor;
  /** Reference features (reference UNet) in block order down -> mid -> up. */
  referenceFeatures: T.Tensor[];
  /** attn1 flow fields / maps (generative UNet, when requested). */
  reports: ReferenceContext['reports'];
}

export interface UNetForwardOptions {
  /** Text/image conditioning for ordinary cross-attention (unused by Leffa). */
  encoderHiddenStates?: T.Tensor;
  /** Leffa role of this pass: collect reference features, or consume them. */
  reference?: { mode: ReferenceMode; features?: T.Tensor[] };
  report?: AttentionReportRequest;
}

/**
 * diffusers' UNet2DConditionModel (state-dict keys as diffusers), with the Leffa hooks: the same class serves as
 * reference UNet (mode 'collect') and generative UNet (mode 'consume').
 */
export class UNet2DConditionModel extends T.Module {
  readonly conv_in: T.nn.Conv2d;
  readonly time_embedding: TimestepEmbedding;
  readonly down_blocks: T.nn.ModuleList<DownBlock>;
  readonly mid_block: MidBlock;
  readonly up_blocks: T.nn.ModuleList<UpBlock>;
  readonly conv_norm_out: T.nn.GroupNorm;
  readonly conv_out: T.nn.Conv2d;

  constructor(readonly config: UNetConfig) {
    super();
    const c = config;
    const boc = c.blockOutChannels;
    if (c.downBlockTypes.length !== boc.length || c.upBlockTypes.length !== boc.length) {
      throw new Error(`UNet config: ${boc.length} block_out_channels but ${c.downBlockTypes.length} down / ${c.upBlockTypes.length} up block types`);
    }
    const tembChannels = boc[0]! * 4;
    const transformer = {
      heads: c.attentionHeads,
      dimHead: 0,
      crossAttentionDim: c.crossAttentionDim,
      skipCrossAttention: c.skipCrossAttention,
      layers: c.transformerLayersPerBlock,
      groups: c.normNumGroups,
    };
    const opts = (cross: boolean): BlockOptions => ({
      tembChannels,
      groups: c.normNumGroups,
      eps: c.normEps,
      ...(cross ? { transformer } : {}),
    });

    this.conv_in = this.addModule('conv_in', new Conv2d(c.inChannels, boc[0]!, 3, { padding: 1 }));
    this.time_embedding = this.addModule('time_embedding', new TimestepEmbedding(boc[0]!, tembChannels));

    const down: DownBlock[] = [];
    let channels = boc[0]!;
    c.downBlockTypes.forEach((type, i) => {
      const isFinal = i === boc.length - 1;
      down.push(new DownBlock(channels, boc[i]!, c.layersPerBlock, !isFinal, opts(type === 'CrossAttnDownBlock2D')));
      channels = boc[i]!;
    });
    this.down_blocks = this.addModule('down_blocks', new T.nn.ModuleList(down));
    this.mid_block = this.addModule('mid_block', new MidBlock(boc[boc.length - 1]!, opts(true)));

    // Skip channels in the order the up path pops them (the reverse of the order the down path pushes them).
    const pushed = [boc[0]!];
    c.downBlockTypes.forEach((_, i) => {
      for (let l = 0; l < c.layersPerBlock; l++) pushed.push(boc[i]!);
      if (i < boc.length - 1) pushed.push(boc[i]!);
    });
    const reversed = [...boc].reverse();
    const up: UpBlock[] = [];
    let prev = reversed[0]!;
    c.upBlockTypes.forEach((type, i) => {
      const out = reversed[i]!;
      const skipC = Array.from({ length: c.layersPerBlock + 1 }, () => pushed.pop()!);
      up.push(new UpBlock(prev, out, skipC, i < boc.length - 1, opts(type === 'CrossAttnUpBlock2D')));
      prev = out;
    });
    this.up_blocks = this.addModule('up_blocks', new T.nn.ModuleList(up));
    this.conv_norm_out = this.addModule('conv_norm_out', new GroupNorm(c.normNumGroups, boc[0]!, { eps: c.normEps }));
    this.conv_out = this.addModule('conv_out', new Conv2d(boc[0]!, c.outChannels, 3, { padding: 1 }));

    for (const [path, m] of this.namedModules()) if (m instanceof BasicTransformerBlock) m.path = path;
  }

  /** Predicts noise for `sample` [B, inChannels, h, w] at `timesteps` (one per batch entry or one for all). */
  forward(sample: T.Tensor, timesteps: number | readonly number[], options: UNetForwardOptions = {}): UNetOutput {
    const c = this.config;
    if (sample.rank !== 4 || sample.shape[1] !== c.inChannels) {
      throw new Error(`UNet: expected sample [B, ${c.inChannels}, H, W], got ${T.formatShape(sample.shape)}`);
    }
    const batch = sample.shape[0]!;
    const ctx = new ReferenceContext(options.reference?.mode ?? 'none', options.reference?.features ?? [], options.report);
    const context = options.encoderHiddenStates;

    const t: number[] = typeof timesteps === 'number' ? new Array(batch).fill(timesteps) : [...timesteps];
    if (t.length !== batch) throw new Error(`UNet: ${t.length} timesteps for a batch of ${batch}`);
    const tProj = T.timestepEmbedding(t, c.blockOutChannels[0]!, { flipSinToCos: c.flipSinToCos, downscaleFreqShift: c.freqShift });
    const temb = T.silu(this.time_embedding.forward(tProj));

    let h = this.conv_in.forward(sample);
    const skips: T.Tensor[] = [h];
    for (const block of this.down_blocks) {
      const r = block.forward(h, temb, ctx, context);
      h = r.out;
      skips.push(...r.skips);
    }
    h = this.mid_block.forward(h, temb, ctx, context);
    for (const [i, block] of [...this.up_blocks].entries()) {
      const isFinal = i === this.up_blocks.length - 1;
      // The skip this block's upsampler must match is the last one left after it pops its own.
      const next = skips[skips.length - 1 - block.resnets.length];
      const size = !isFinal && next ? ([next.shape[2]!, next.shape[3]!] as [number, number]) : undefined;
      h = block.forward(h, skips, temb, ctx, context, size);
    }
    const out = this.conv_out.forward(this.conv_norm_out.forwardSilu(h));
    ctx.finish();
    return { sample: out, referenceFeatures: ctx.features, reports: ctx.reports };
  }
}

/** TimestepEmbedding: linear_1 -> SiLU -> linear_2 (diffusers' key names). */
export class TimestepEmbedding extends T.Module {
  readonly linear_1: T.nn.Linear;
  readonly linear_2: T.nn.Linear;

  constructor(inChannels: number, embedChannels: number) {
    super();
    this.linear_1 = this.addModule('linear_1', new Linear(inChannels, embedChannels));
    this.linear_2 = this.addModule('linear_2', new Linear(embedChannels, embedChannels));
  }

  forward(x: T.Tensor): T.Tensor {
    return this.linear_2.forward(T.silu(this.linear_1.forward(x)));
  }
}
