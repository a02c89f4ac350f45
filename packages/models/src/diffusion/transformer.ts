import * as T from '@leffa-webgpu/core';
import { Attention } from './attention.js';
import { blockScope } from './reference.js';

const { Conv2d, Dropout, GroupNorm, LayerNorm, Linear, ModuleList } = T.nn;

/** GEGLU: a projection to twice the width, split into value and gate: value * gelu(gate). */
export class GEGLU extends T.Module {
  readonly proj: T.nn.Linear;

  constructor(dimIn: number, dimOut: number) {
    super();
    this.proj = this.addModule('proj', new Linear(dimIn, dimOut * 2));
  }

  forward(x: T.Tensor): T.Tensor {
    // One kernel for the split, the GELU and the product, in each direction.
    return T.geglu(this.proj.forward(x));
  }
}

/** diffusers' FeedForward with GEGLU: net.0 (GEGLU), net.1 (dropout), net.2 (Linear). */
export class FeedForward extends T.Module {
  readonly net: T.nn.ModuleList<T.Module>;

  constructor(dim: number, mult = 4) {
    super();
    const inner = dim * mult;
    this.net = this.addModule(
      'net',
      new ModuleList<T.Module>([new GEGLU(dim, inner), new Dropout(0), new Linear(inner, dim)]),
    );
  }

  forward(x: T.Tensor): T.Tensor {
    const h = (this.net.at(0) as GEGLU).forward(x);
    return (this.net.at(2) as T.nn.Linear).forward(h);
  }
}

export interface TransformerBlockOptions {
  heads: number;
  dimHead: number;
  crossAttentionDim: number;
  /**
   * Leffa replaces cross-attention with a processor that returns its input, so the block computes
   * x + norm2(x) there; attn2's weights stay loadable but unused. Off: ordinary cross-attention.
   */
  skipCrossAttention: boolean;
}

/**
 * BasicTransformerBlock: x += attn1(norm1 x); x += attn2(norm2 x, context); x += ff(norm3 x). Leffa's reference
 * attention is attn1's processor (see reference.ts).
 */
export class BasicTransformerBlock extends T.Module {
  readonly norm1: T.nn.LayerNorm;
  readonly attn1: Attention;
  readonly norm2: T.nn.LayerNorm;
  readonly attn2: Attention;
  readonly norm3: T.nn.LayerNorm;
  readonly ff: FeedForward;
  /** Dotted path inside the UNet, set by the UNet, for attention reports and errors. */
  path = '';

  constructor(
    dim: number,
    private readonly options: TransformerBlockOptions,
  ) {
    super();
    const { heads, dimHead } = options;
    this.norm1 = this.addModule('norm1', new LayerNorm([dim]));
    this.attn1 = this.addModule('attn1', new Attention(dim, { heads, dimHead }));
    this.norm2 = this.addModule('norm2', new LayerNorm([dim]));
    this.attn2 = this.addModule(
      'attn2',
      new Attention(dim, { heads, dimHead, crossAttentionDim: options.crossAttentionDim }),
    );
    this.norm3 = this.addModule('norm3', new LayerNorm([dim]));
    this.ff = this.addModule('ff', new FeedForward(dim));
  }

  forward(x: T.Tensor, grid: { height: number; width: number }, context?: T.Tensor): T.Tensor {
    return blockScope(() => this.compute(x, grid, context), this);
  }

  private compute(x: T.Tensor, grid: { height: number; width: number }, context?: T.Tensor): T.Tensor {
    let h = T.add(x, this.attn1.forward(this.norm1.forward(x), undefined, grid));
    const n2 = this.norm2.forward(h);
    if (this.options.skipCrossAttention) h = T.add(h, n2);
    else {
      if (!context)
        throw new Error(`${this.path || 'BasicTransformerBlock'}: cross-attention needs encoder hidden states`);
      h = T.add(h, this.attn2.forward(n2, context));
    }
    return T.add(
      h,
      blockScope(() => this.ff.forward(this.norm3.forward(h))),
    );
  }
}

export interface Transformer2DOptions extends TransformerBlockOptions {
  /** BasicTransformerBlocks in sequence (diffusers' transformer_layers_per_block; SDXL: 1, 2, 10). */
  layers: number;
  groups: number;
  /**
   * diffusers' use_linear_projection (SD 2.x, SDXL): proj_in / proj_out are Linear layers on the tokens
   * ([inner, C] weights) instead of 1x1 convolutions on the feature map ([inner, C, 1, 1], SD 1.5). The two
   * compute the same map; only the weights' layout, and so the checkpoint's shapes, differ.
   */
  linearProjection?: boolean;
}

/** Transformer2DModel: GroupNorm, proj_in, blocks, proj_out, residual (convolutional or linear projections). */
export class Transformer2DModel extends T.Module {
  readonly norm: T.nn.GroupNorm;
  readonly proj_in: T.nn.Conv2d | T.nn.Linear;
  readonly transformer_blocks: T.nn.ModuleList<BasicTransformerBlock>;
  readonly proj_out: T.nn.Conv2d | T.nn.Linear;

  constructor(channels: number, options: Transformer2DOptions) {
    super();
    const inner = options.heads * options.dimHead;
    const linear = options.linearProjection ?? false;
    this.norm = this.addModule('norm', new GroupNorm(options.groups, channels, { eps: 1e-6 }));
    this.proj_in = this.addModule('proj_in', linear ? new Linear(channels, inner) : new Conv2d(channels, inner, 1));
    this.transformer_blocks = this.addModule(
      'transformer_blocks',
      new ModuleList(Array.from({ length: options.layers }, () => new BasicTransformerBlock(inner, options))),
    );
    this.proj_out = this.addModule('proj_out', linear ? new Linear(inner, channels) : new Conv2d(inner, channels, 1));
  }

  forward(x: T.Tensor, context?: T.Tensor): T.Tensor {
    return blockScope(() => this.compute(x, context), this);
  }

  private compute(x: T.Tensor, context?: T.Tensor): T.Tensor {
    const [b, , height, width] = x.shape as [number, number, number, number];
    const toTokens = (m: T.Tensor) => T.reshape(T.permute(m, [0, 2, 3, 1]), [b, height * width, m.shape[1]!]);
    const toMap = (t: T.Tensor) => T.permute(T.reshape(t, [b, height, width, t.shape[2]!]), [0, 3, 1, 2]);
    const normed = this.norm.forward(x);
    let tokens: T.Tensor;
    if (this.proj_in instanceof Linear) tokens = this.proj_in.forward(toTokens(normed));
    else tokens = toTokens(this.proj_in.forward(normed));
    for (const block of this.transformer_blocks) tokens = block.forward(tokens, { height, width }, context);
    const out =
      this.proj_out instanceof Linear ? toMap(this.proj_out.forward(tokens)) : this.proj_out.forward(toMap(tokens));
    return T.add(out, x);
  }
}
