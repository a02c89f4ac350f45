import * as T from '@leffa-webgpu/core';

/**
 * How the Leffa UNets exchange reference features. The reference UNet `collect`s, for every transformer
 * block in order down -> mid -> up, its hidden state after norm1; the generative UNet `consume`s them in the
 * same order, each attn1 attending over [own tokens ; reference tokens].
 */
export type ReferenceMode = 'none' | 'collect' | 'consume';

/** What the generative UNet reports from its attn1 layers for the Leffa loss and for inspection. */
export interface AttentionReportRequest {
  /** 'flow': F = softmax(q k_ref^T * scale / tau) @ C, head-averaged (fused kernel); 'map': the head-averaged map. */
  kind: 'flow' | 'map';
  /** Softmax temperature (Leffa: 2.0). */
  tau: number;
  /** Only layers whose height is at least this fraction of the image height (Leffa: 1/32). */
  minFraction: number;
  /** Image height in pixels (the latent is 1/8 of it). */
  imageHeight: number;
}

export interface AttentionReport {
  /** Dotted name of the attention module, e.g. 'down_blocks.0.attentions.1.transformer_blocks.0.attn1'. */
  layer: string;
  height: number;
  width: number;
  /** [B, N, 2] flow in normalised key coordinates, or [B, N, M] attention map. */
  value: T.Tensor;
}

/**
 * Runs one block of a forward pass. Without gradient recording its intermediates are freed as it returns (the
 * reference features and attention reports it adds to `ctx` survive with its result), so inference holds one
 * block's activations at a time instead of the whole pass's; with recording everything stays for backward.
 */
export function blockScope<R>(fn: () => R, ctx?: ReferenceContext): R {
  if (T.isGradEnabled()) return fn();
  const features = ctx?.features.length ?? 0;
  const reports = ctx?.reports.length ?? 0;
  return T.tidy(() => {
    const result = fn();
    const added = ctx ? [...(ctx.mode === 'collect' ? ctx.features.slice(features) : []), ...ctx.reports.slice(reports).map((r) => r.value)] : [];
    return { result, added };
  }).result;
}

/** Per-forward state threaded through the blocks. */
export class ReferenceContext {
  features: T.Tensor[] = [];
  private cursor = 0;
  readonly reports: AttentionReport[] = [];

  constructor(
    readonly mode: ReferenceMode,
    features: T.Tensor[] = [],
    readonly request?: AttentionReportRequest,
  ) {
    this.features = features;
  }

  /** The next reference feature for a consuming block. */
  next(layer: string): T.Tensor {
    const f = this.features[this.cursor++];
    if (!f) {
      throw new Error(`Leffa UNet: no reference feature for ${layer} (got ${this.features.length}; the reference UNet must share the architecture)`);
    }
    return f;
  }

  /** Checks that every reference feature was used exactly once. */
  finish(): void {
    if (this.mode === 'consume' && this.cursor !== this.features.length) {
      throw new Error(`Leffa UNet: ${this.features.length} reference features given, ${this.cursor} used`);
    }
  }
}
