import * as T from '@leffa-webgpu/core';
import {
  type AttentionReport,
  type AttentionReportRequest,
  ReferenceCollectProcessor,
  ReferenceConsumeProcessor,
  type ReferenceMode,
  ReferenceStore,
} from './reference.js';
import { Attention, type AttnProcessor } from './attention.js';
import { timestepEmbedding } from './timestep-embedding.js';
import { BasicTransformerBlock } from './transformer.js';
import { type BlockOptions, DownBlock, MidBlock, UpBlock } from './unet-blocks.js';

const { Conv2d, GroupNorm, Linear } = T.nn;

export type DownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UpBlockType = 'UpBlock2D' | 'CrossAttnUpBlock2D';

/**
 * SDXL's added conditioning (diffusers' addition_embed_type 'text_time'): the pooled text embedding and six
 * size/crop numbers, each sinusoidally embedded to `timeEmbedDim` (addition_time_embed_dim), concatenated to
 * `projectionInputDim` (projection_class_embeddings_input_dim, 1280 + 6 x 256 = 2816) and mapped by
 * `add_embedding` (a TimestepEmbedding to the time-embedding width) onto the timestep embedding.
 */
export interface AdditionEmbeddingConfig {
  type: 'text_time';
  timeEmbedDim: number;
  projectionInputDim: number;
}

/** The subset of diffusers' UNet2DConditionModel config that SD 1.5, SDXL and Leffa use (camelCase). */
export interface UNetConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  downBlockTypes: DownBlockType[];
  upBlockTypes: UpBlockType[];
  layersPerBlock: number;
  /**
   * Heads per attention: one number for all blocks or one per down block (diffusers' attention_head_dim, which
   * it uses as the number of heads: SD 1.5 8, SDXL [5, 10, 20]); the mid block takes the last entry, the up
   * blocks the entries in reverse. Each head has channels / heads dimensions (SDXL: 64 everywhere).
   */
  attentionHeads: number | number[];
  crossAttentionDim: number;
  normNumGroups: number;
  normEps: number;
  flipSinToCos: boolean;
  freqShift: number;
  /**
   * BasicTransformerBlocks per Transformer2DModel: one number, or one per down block (SDXL [1, 2, 10]); the mid
   * block takes the last entry, the up blocks the entries in reverse, as diffusers does.
   */
  transformerLayersPerBlock: number | number[];
  /** Linear proj_in / proj_out in the transformers (diffusers' use_linear_projection; SDXL). Absent: false. */
  useLinearProjection?: boolean;
  /**
   * SDXL's `add_embedding`, built so that the released weights load, and never used: Leffa builds its UNets
   * from the SDXL config, which creates it, and only then sets addition_embed_type = None, so the forward pass
   * skips it (the state dict still holds add_embedding.*). Absent: no such module (SD 1.5).
   */
  addition?: AdditionEmbeddingConfig | null;
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

/**
 * diffusers/stable-diffusion-xl-1.0-inpainting-0.1's unet/config.json, on which Leffa's pose_transfer.pth is
 * built (LeffaModel replaces conv_in: 4 input channels for the reference UNet, 12 for the generative one).
 */
export const SDXL_UNET: UNetConfig = {
  inChannels: 9,
  outChannels: 4,
  blockOutChannels: [320, 640, 1280],
  downBlockTypes: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  upBlockTypes: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  layersPerBlock: 2,
  attentionHeads: [5, 10, 20],
  crossAttentionDim: 2048,
  normNumGroups: 32,
  normEps: 1e-5,
  flipSinToCos: true,
  freqShift: 0,
  transformerLayersPerBlock: [1, 2, 10],
  useLinearProjection: true,
  addition: { type: 'text_time', timeEmbedDim: 256, projectionInputDim: 2816 },
  skipCrossAttention: true,
};

/**
 * The SDXL layout at test size: the same block types, per-block transformer depths and head counts (head
 * widths 24 and 16), linear projections and an (unused) add_embedding.
 */
export const SDXL_TINY_UNET: UNetConfig = {
  ...SDXL_UNET,
  inChannels: 4,
  blockOutChannels: [32, 48, 64],
  layersPerBlock: 1,
  attentionHeads: [1, 2, 4],
  crossAttentionDim: 32,
  normNumGroups: 8,
  transformerLayersPerBlock: [1, 2, 3],
  addition: { type: 'text_time', timeEmbedDim: 8, projectionInputDim: 40 },
};

/** A per-block setting (one number for all, or one per down block) as one value per down block. */
function perBlock(name: string, value: number | readonly number[], blocks: number): number[] {
  if (typeof value === 'number') return new Array<number>(blocks).fill(value);
  if (value.length !== blocks)
    throw new Error(`UNet config: ${name} has ${value.length} entries (${value.join(', ')}) for ${blocks} blocks`);
  return [...value];
}

export interface UNetOutput {
  sample: T.Tensor;
  /** Reference features (reference UNet) in block order down -> mid -> up. */
  referenceFeatures: T.Tensor[];
  /** attn1 flow fields / maps (generative UNet, when requested). */
  reports: AttentionReport[];
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
  /** SDXL's added time/text embedding: loaded, never used (see UNetConfig.addition). */
  readonly add_embedding: TimestepEmbedding | null;
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
      throw new Error(
        `UNet config: ${boc.length} block_out_channels but ${c.downBlockTypes.length} down / ${c.upBlockTypes.length} up block types`,
      );
    }
    const heads = perBlock('attentionHeads', c.attentionHeads, boc.length);
    const depths = perBlock('transformerLayersPerBlock', c.transformerLayersPerBlock, boc.length);
    const last = boc.length - 1;
    const tembChannels = boc[0]! * 4;
    // Block i of the down path uses entry i, the mid block the last entry, block i of the up path entry last - i.
    const opts = (cross: boolean, entry: number): BlockOptions => ({
      tembChannels,
      groups: c.normNumGroups,
      eps: c.normEps,
      ...(cross
        ? {
            transformer: {
              heads: heads[entry]!,
              dimHead: 0,
              crossAttentionDim: c.crossAttentionDim,
              skipCrossAttention: c.skipCrossAttention,
              layers: depths[entry]!,
              groups: c.normNumGroups,
              linearProjection: c.useLinearProjection ?? false,
            },
          }
        : {}),
    });

    this.conv_in = this.addModule('conv_in', new Conv2d(c.inChannels, boc[0]!, 3, { padding: 1 }));
    this.time_embedding = this.addModule('time_embedding', new TimestepEmbedding(boc[0]!, tembChannels));
    this.add_embedding = c.addition
      ? this.addModule('add_embedding', new TimestepEmbedding(c.addition.projectionInputDim, tembChannels))
      : null;

    const down: DownBlock[] = [];
    let channels = boc[0]!;
    c.downBlockTypes.forEach((type, i) => {
      down.push(new DownBlock(channels, boc[i]!, c.layersPerBlock, i < last, opts(type === 'CrossAttnDownBlock2D', i)));
      channels = boc[i]!;
    });
    this.down_blocks = this.addModule('down_blocks', new T.nn.ModuleList(down));
    this.mid_block = this.addModule('mid_block', new MidBlock(boc[last]!, opts(true, last)));

    // Skip channels in the order the up path pops them (the reverse of the order the down path pushes them).
    const pushed = [boc[0]!];
    c.downBlockTypes.forEach((_, i) => {
      for (let l = 0; l < c.layersPerBlock; l++) pushed.push(boc[i]!);
      if (i < last) pushed.push(boc[i]!);
    });
    const up: UpBlock[] = [];
    let prev = boc[last]!;
    c.upBlockTypes.forEach((type, i) => {
      const out = boc[last - i]!;
      const skipC = Array.from({ length: c.layersPerBlock + 1 }, () => pushed.pop()!);
      up.push(new UpBlock(prev, out, skipC, i < last, opts(type === 'CrossAttnUpBlock2D', last - i)));
      prev = out;
    });
    this.up_blocks = this.addModule('up_blocks', new T.nn.ModuleList(up));
    this.conv_norm_out = this.addModule('conv_norm_out', new GroupNorm(c.normNumGroups, boc[0]!, { eps: c.normEps }));
    this.conv_out = this.addModule('conv_out', new Conv2d(boc[0]!, c.outChannels, 3, { padding: 1 }));

    for (const [path, m] of this.namedModules()) {
      if (m instanceof BasicTransformerBlock) m.path = path;
      if (m instanceof Attention) m.path = path;
    }
  }

  /** Every attention module's processor by dotted module name (diffusers' attn_processors). */
  attnProcessors(): Map<string, AttnProcessor> {
    const out = new Map<string, AttnProcessor>();
    for (const [path, m] of this.namedModules()) if (m instanceof Attention) out.set(path, m.processor);
    return out;
  }

  /**
   * diffusers' set_attn_processor: one processor for every attention module, or a function choosing per module
   * name (null leaves that module's processor as it is).
   */
  setAttnProcessor(processor: AttnProcessor | ((name: string, attn: Attention) => AttnProcessor | null)): void {
    for (const [path, m] of this.namedModules()) {
      if (!(m instanceof Attention)) continue;
      const p = typeof processor === 'function' ? processor(path, m) : processor;
      if (p) m.processor = p;
    }
  }

  /**
   * Predicts noise for `sample` [B, inChannels, h, w] at `timesteps` (one per batch entry or one for all). The
   * embedding is the timestep's alone: `add_embedding` (SDXL) is not applied, as in Leffa.
   */
  forward(sample: T.Tensor, timesteps: number | readonly number[], options: UNetForwardOptions = {}): UNetOutput {
    const c = this.config;
    if (sample.rank !== 4 || sample.shape[1] !== c.inChannels) {
      throw new Error(`UNet: expected sample [B, ${c.inChannels}, H, W], got ${T.formatShape(sample.shape)}`);
    }
    const batch = sample.shape[0]!;
    // A Leffa role installs reference processors on every attn1 for this pass and restores the previous ones.
    const mode = options.reference?.mode ?? 'none';
    const store = new ReferenceStore(options.reference?.features ?? []);
    const roleProcessor =
      mode === 'collect'
        ? new ReferenceCollectProcessor(store)
        : mode === 'consume'
          ? new ReferenceConsumeProcessor(store, options.report)
          : null;
    const previous = this.attnProcessors();
    if (roleProcessor) this.setAttnProcessor((name) => (name.endsWith('.attn1') ? roleProcessor : null));
    try {
      const sampleOut = this.predict(sample, timesteps, batch, options);
      if (mode === 'consume') store.finishConsume();
      return { sample: sampleOut, referenceFeatures: store.features, reports: store.reports };
    } finally {
      if (roleProcessor) this.setAttnProcessor((name) => previous.get(name) ?? null);
    }
  }

  /** The UNet proper, with whatever attention processors are installed. */
  private predict(
    sample: T.Tensor,
    timesteps: number | readonly number[],
    batch: number,
    options: UNetForwardOptions,
  ): T.Tensor {
    const c = this.config;
    // Inputs take the weights' dtype (as diffusers casts the timestep embedding), so a float16 model runs in
    // float16 from float32 latents.
    const dtype = this.conv_in.weight.dtype;
    const context = options.encoderHiddenStates && T.cast(options.encoderHiddenStates, dtype);

    const t: number[] = typeof timesteps === 'number' ? new Array(batch).fill(timesteps) : [...timesteps];
    if (t.length !== batch) throw new Error(`UNet: ${t.length} timesteps for a batch of ${batch}`);
    const tProj = timestepEmbedding(t, c.blockOutChannels[0]!, {
      flipSinToCos: c.flipSinToCos,
      downscaleFreqShift: c.freqShift,
    });
    const temb = T.silu(this.time_embedding.forward(T.cast(tProj, dtype)));

    let h = this.conv_in.forward(T.cast(sample, dtype));
    const skips: T.Tensor[] = [h];
    for (const block of this.down_blocks) {
      const r = block.forward(h, temb, context);
      h = r.out;
      skips.push(...r.skips);
    }
    h = this.mid_block.forward(h, temb, context);
    for (const [i, block] of [...this.up_blocks].entries()) {
      const isFinal = i === this.up_blocks.length - 1;
      // The skip this block's upsampler must match is the last one left after it pops its own.
      const next = skips[skips.length - 1 - block.resnets.length];
      const size = !isFinal && next ? ([next.shape[2]!, next.shape[3]!] as [number, number]) : undefined;
      h = block.forward(h, skips, temb, context, size);
    }
    return this.conv_out.forward(this.conv_norm_out.forwardSilu(h));
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
