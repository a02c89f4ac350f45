import * as T from '@leffa-webgpu/core';

const { GroupNorm, Linear, ModuleList } = T.nn;

export interface AttentionOptions {
  heads: number;
  dimHead: number;
  /** Width of the key/value source when it differs from the queries (cross-attention). */
  crossAttentionDim?: number;
  /** Bias on to_q/to_k/to_v (the VAE has it, the UNet does not). */
  qkvBias?: boolean;
  /** GroupNorm applied to a [B, C, H, W] input first, with a residual around the whole block (the VAE's). */
  groupNorm?: { groups: number; eps: number };
}

/** Where an attention call sits: its dotted path and, for token grids, the feature map's size. */
export interface AttentionCallInfo {
  /** Dotted name of the attention module inside its model ('' when it was not named). */
  layer: string;
  grid?: { height: number; width: number };
}

/**
 * diffusers' attention processor: what an `Attention` module computes from its weights. Swapping the processor
 * changes the computation without changing the module or its state-dict keys (Leffa's reference attention).
 */
export interface AttnProcessor {
  call(attn: Attention, hidden: T.Tensor, context: T.Tensor | undefined, info: AttentionCallInfo): T.Tensor;
}

/** Multi-head attention of the tokens over `context` (themselves by default). */
export class DefaultAttnProcessor implements AttnProcessor {
  call(attn: Attention, hidden: T.Tensor, context: T.Tensor = hidden): T.Tensor {
    const q = attn.to_q.forward(hidden);
    const k = attn.to_k.forward(context);
    const v = attn.to_v.forward(context);
    return attn.project(T.multiHeadAttention(q, k, v, { heads: attn.heads }));
  }
}

const DEFAULT_PROCESSOR = new DefaultAttnProcessor();

/** diffusers' `Attention`: to_q, to_k, to_v, to_out.0 (and group_norm for the VAE's spatial attention). */
export class Attention extends T.Module {
  readonly to_q: T.nn.Linear;
  readonly to_k: T.nn.Linear;
  readonly to_v: T.nn.Linear;
  readonly to_out: T.nn.ModuleList<T.nn.Linear>;
  readonly group_norm: T.nn.GroupNorm | null;
  readonly heads: number;
  readonly dimHead: number;
  /** What forward computes; not a module, so it adds no state-dict keys. */
  processor: AttnProcessor = DEFAULT_PROCESSOR;
  /** Dotted path inside the model, set by the model that names it, for processors' reports and errors. */
  path = '';

  constructor(
    readonly queryDim: number,
    options: AttentionOptions,
  ) {
    super();
    this.heads = options.heads;
    this.dimHead = options.dimHead;
    const inner = options.heads * options.dimHead;
    const kvDim = options.crossAttentionDim ?? queryDim;
    const bias = options.qkvBias ?? false;
    this.group_norm = options.groupNorm
      ? this.addModule('group_norm', new GroupNorm(options.groupNorm.groups, queryDim, { eps: options.groupNorm.eps }))
      : null;
    this.to_q = this.addModule('to_q', new Linear(queryDim, inner, { bias }));
    this.to_k = this.addModule('to_k', new Linear(kvDim, inner, { bias }));
    this.to_v = this.addModule('to_v', new Linear(kvDim, inner, { bias }));
    this.to_out = this.addModule('to_out', new ModuleList([new Linear(inner, queryDim)]));
  }

  /** [B, N, heads*d] -> [B, heads, N, d]. */
  splitHeads(x: T.Tensor): T.Tensor {
    const [b, n] = x.shape as [number, number, number];
    return T.permute(T.reshape(x, [b, n, this.heads, this.dimHead]), [0, 2, 1, 3]);
  }

  /**
   * Tokens [B, N, C] through the processor, by default multi-head attention over `context` [B, M, C']
   * (themselves when absent); `grid` is the token grid's size where the tokens come from a feature map.
   */
  forward(x: T.Tensor, context?: T.Tensor, grid?: { height: number; width: number }): T.Tensor {
    return this.processor.call(this, x, context, { layer: this.path, ...(grid ? { grid } : {}) });
  }

  /** to_out applied to the heads' outputs side by side, [B, N, heads * d]. */
  project(tokens: T.Tensor): T.Tensor {
    return this.to_out.at(0).forward(tokens);
  }

  /** The VAE's spatial self-attention on [B, C, H, W] with its group norm and residual connection. */
  forwardSpatial(x: T.Tensor): T.Tensor {
    if (!this.group_norm) throw new Error('Attention.forwardSpatial: this attention has no group_norm');
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const tokens = T.permute(T.reshape(this.group_norm.forward(x), [b, c, h * w]), [0, 2, 1]);
    const out = this.forward(tokens);
    return T.add(T.reshape(T.permute(out, [0, 2, 1]), [b, c, h, w]), x);
  }
}
