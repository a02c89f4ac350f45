import * as T from '@leffa-webgpu/core';
import { Attention, type AttentionCallInfo, type AttnProcessor, DefaultAttnProcessor } from './attention.js';
import { flowField } from './flow-field.js';

/**
 * How the Leffa UNets exchange reference features, through attn1 processors. The reference UNet `collect`s,
 * for every transformer block in order down -> mid -> up, attn1's input (the hidden state after norm1); the
 * generative UNet `consume`s them in the same order, each attn1 attending over [own tokens ; reference tokens].
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
  /**
   * Also report each layer's reference readout (ours, for `referenceReadoutLoss`): what its queries read from the
   * reference tokens alone, softmax(q k_ref^T / sqrt(d)) v_ref with heads merged.
   */
  readout?: boolean;
  /**
   * Also report how much of each query's joint softmax (over its own and the reference keys, as the layer computes
   * it) falls on the reference keys (ours, for `referenceMassLoss`), as `referenceLogit`.
   */
  referenceMass?: boolean;
}

export interface AttentionReport {
  /** Dotted name of the attention module, e.g. 'down_blocks.0.attentions.1.transformer_blocks.0.attn1'. */
  layer: string;
  height: number;
  width: number;
  /** [B, N, 2] flow in normalised key coordinates, or [B, N, M] attention map. */
  value: T.Tensor;
  /** [B, N, heads * d]: the reference readout, when the request asks for it. */
  readout?: T.Tensor;
  /**
   * [B, heads, N]: log(mass on the reference keys / mass on the own keys) of each query's attention, when the request
   * asks for it; sigmoid of it is the share of the reference (logsumexp of the scaled scores over each key set).
   */
  referenceLogit?: T.Tensor;
}

/**
 * What one forward pass's reference processors share: the reference features (collected or given), the
 * consumer's cursor into them, the attention reports, and every tensor the processors hand out of the pass.
 */
export class ReferenceStore {
  private cursor = 0;
  readonly reports: AttentionReport[] = [];
  /** Tensors produced for use after the pass (collected features, report values), in production order. */
  readonly produced: T.Tensor[] = [];

  constructor(readonly features: T.Tensor[] = []) {}

  /** The next reference feature for a consuming layer. */
  next(layer: string): T.Tensor {
    const f = this.features[this.cursor++];
    if (!f) {
      throw new Error(
        `Leffa UNet: no reference feature for ${layer} (got ${this.features.length}; the reference UNet must share the architecture)`,
      );
    }
    return f;
  }

  /** Checks that a consumer used every reference feature exactly once. */
  finishConsume(): void {
    if (this.cursor !== this.features.length) {
      throw new Error(`Leffa UNet: ${this.features.length} reference features given, ${this.cursor} used`);
    }
  }
}

/** Processors that hand tensors out of a pass name their store, so blockScope keeps those tensors. */
interface StoreProcessor extends AttnProcessor {
  readonly store: ReferenceStore;
}

/** The reference UNet's attn1: ordinary self-attention that also collects its input tokens. */
export class ReferenceCollectProcessor extends DefaultAttnProcessor implements StoreProcessor {
  constructor(readonly store: ReferenceStore) {
    super();
  }

  override call(attn: Attention, hidden: T.Tensor, context?: T.Tensor): T.Tensor {
    const out = super.call(attn, hidden, context);
    this.store.features.push(hidden);
    this.store.produced.push(hidden);
    return out;
  }
}

/**
 * The generative UNet's attn1: queries from its own tokens, keys and values from [own ; reference] (only
 * own-token outputs are kept, so queries of reference tokens are never computed). With a request it also
 * reports the target-query x reference-key flow field or attention map the Leffa loss reads.
 */
export class ReferenceConsumeProcessor implements StoreProcessor {
  constructor(
    readonly store: ReferenceStore,
    private readonly request?: AttentionReportRequest,
  ) {}

  call(attn: Attention, hidden: T.Tensor, _context: T.Tensor | undefined, info: AttentionCallInfo): T.Tensor {
    const { layer, grid } = info;
    const ref = this.store.next(layer);
    if (ref.shape[0] !== hidden.shape[0] || ref.shape[2] !== hidden.shape[2]) {
      throw new Error(
        `${layer}: reference feature ${T.formatShape(ref.shape)} does not match tokens ${T.formatShape(hidden.shape)} (batch and width must agree)`,
      );
    }
    // Keys and values of [own ; reference] tokens, each projection one product over both.
    const both = T.concat([hidden, ref], 1);
    const q = attn.to_q.forward(hidden);
    const k = attn.to_k.forward(both);
    const v = attn.to_v.forward(both);
    const out = attn.project(T.multiHeadAttention(q, k, v, { heads: attn.heads }));
    if (this.request && grid) this.report(attn, { q, k, v, own: hidden.shape[1]! }, layer, grid);
    return out;
  }

  /** Layers at least `minFraction` of the image high, whose reference tokens cover the same grid. */
  private report(
    attn: Attention,
    // Token layout, [B, tokens, heads * d]; k and v over [own ; reference] tokens, the first `own` of them own.
    { q, k, v, own }: { q: T.Tensor; k: T.Tensor; v: T.Tensor; own: number },
    layer: string,
    grid: { height: number; width: number },
  ): void {
    const req = this.request!;
    const refCount = k.shape[1]! - own;
    if (grid.height < req.imageHeight * req.minFraction || refCount !== grid.height * grid.width) return;
    // The reference part is sliced out only for a layer that reports, each piece only for a report that reads it.
    const kRef = T.narrow(k, 1, own, refCount);
    const [qh, kRefh] = [attn.splitHeads(q), attn.splitHeads(kRef)];
    const value =
      req.kind === 'flow'
        ? flowField(qh, kRefh, grid, { tau: req.tau })
        : T.attentionMap(qh, kRefh, { tau: req.tau, headMean: true });
    const readout = req.readout
      ? T.multiHeadAttention(q, kRef, T.narrow(v, 1, own, refCount), { heads: attn.heads })
      : undefined;
    const referenceLogit = req.referenceMass
      ? referenceLogitOf(qh, attn.splitHeads(T.narrow(k, 1, 0, own)), kRefh)
      : undefined;
    this.store.reports.push({
      layer,
      height: grid.height,
      width: grid.width,
      value,
      ...(readout ? { readout } : {}),
      ...(referenceLogit ? { referenceLogit } : {}),
    });
    this.store.produced.push(value, ...(readout ? [readout] : []), ...(referenceLogit ? [referenceLogit] : []));
  }
}

/**
 * log(reference mass / own mass) of softmax(q [k_own; k_ref]^T / sqrt(d)) per query and head, [B, heads, N]: the
 * difference of the two key sets' logsumexps of the scaled scores.
 */
export function referenceLogitOf(q: T.Tensor, kOwn: T.Tensor, kRef: T.Tensor): T.Tensor {
  const scale = 1 / Math.sqrt(q.shape[3]!);
  const lse = (k: T.Tensor) => T.logsumexp(T.mul(T.matmul(q, T.transpose(k)), scale), -1);
  return T.sub(lse(kRef), lse(kOwn));
}

/** The reference stores behind `module`'s attention processors. */
function storesOf(module: T.Module): ReferenceStore[] {
  const stores = new Set<ReferenceStore>();
  for (const [, m] of module.namedModules()) {
    const store = m instanceof Attention ? (m.processor as Partial<StoreProcessor>).store : undefined;
    if (store instanceof ReferenceStore) stores.add(store);
  }
  return [...stores];
}

/**
 * Runs one block of a forward pass. Without gradient recording its intermediates are freed as it returns (the
 * reference features and attention reports its processors produce survive with its result), so inference holds
 * one block's activations at a time instead of the whole pass's; with recording everything stays for backward.
 */
export function blockScope<R>(fn: () => R, owner?: T.Module): R {
  if (T.isGradEnabled()) return fn();
  const stores = owner ? storesOf(owner) : [];
  const before = stores.map((s) => s.produced.length);
  return T.tidy(() => {
    const result = fn();
    const added = stores.flatMap((s, i) => s.produced.slice(before[i]));
    return { result, added };
  }).result;
}
