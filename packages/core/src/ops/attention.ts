import {
  type AttentionSpec,
  attentionBroadcastGrid,
  attentionForwardBroadcastKernel,
  attentionForwardGrid,
  attentionForwardKernel,
  attentionGradKVKernel,
  attentionGradQKernel,
  attentionGrid,
} from '@leffa-webgpu/kernels-wgsl';
import { activeDevice } from '../device/device.js';
import { defineOp } from '../autograd/op.js';
import { isGradEnabled, noGrad } from '../autograd/grad-mode.js';
import { broadcastShapes, formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, mul } from './elementwise.js';
import { emptyTensor, floatResult, launch } from '../forward/launch.js';
import {
  attentionBackwardGemm,
  attentionForwardGemm,
  canSaveProbs,
  tokenAttentionBackward,
  tokenAttentionForward,
  tokenDims,
  tokensFitOneBlock,
} from './attention-gemm.js';
import { matmul, matmulVariantFor } from './matmul.js';
import { mean, sum, sumTo } from './reduce.js';
import { permute, reshape, transpose } from './shape.js';
import { softmax } from './softmax.js';

export interface AttentionOptions {
  /** Multiplies q k^T (default 1 / sqrt(D)). */
  scale?: number;
  /** Additive mask broadcastable to [B, H, N, M] (its last dim must be M). Not differentiated. */
  mask?: Tensor;
}

interface AttentionPlan {
  B: number;
  H: number;
  N: number;
  M: number;
  D: number;
  Dv: number;
  scale: number;
  uniforms: Record<string, number>;
  spec: AttentionSpec;
  mask?: Tensor;
}

function planAttention(op: string, q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): AttentionPlan {
  const bad = () =>
    new Error(
      `${op}: expected q [B, H, N, D], k [B|1, H|1, M, D], v [B|1, H|1, M, Dv], got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}`,
    );
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw bad();
  const [B, H, N, D] = q.shape as [number, number, number, number];
  const [kb, kh, M, kd] = k.shape as [number, number, number, number];
  const [vb, vh, vm, Dv] = v.shape as [number, number, number, number];
  if (
    kd !== D ||
    vm !== M ||
    ![1, B].includes(kb) ||
    ![1, H].includes(kh) ||
    ![1, B].includes(vb) ||
    ![1, H].includes(vh)
  )
    throw bad();
  floatResult(op, [q, k, v]);
  let mask: Tensor | undefined;
  let maskStrides = { maskB: 0, maskH: 0, maskN: 0 };
  if (options.mask) {
    const m = options.mask;
    const shape4 = [...new Array(4 - m.rank).fill(1), ...m.shape];
    if (m.rank > 4 || shape4[3] !== M)
      throw new Error(
        `${op}: mask ${formatShape(m.shape)} must end in M = ${M} and broadcast to [${B}, ${H}, ${N}, ${M}]`,
      );
    broadcastShapes(op, shape4, [B, H, N, M]);
    mask = m;
    maskStrides = {
      maskB: shape4[0] === 1 ? 0 : shape4[1]! * shape4[2]! * M,
      maskH: shape4[1] === 1 ? 0 : shape4[2]! * M,
      maskN: shape4[2] === 1 ? 0 : M,
    };
  }
  const scale = options.scale ?? 1 / Math.sqrt(D);
  return {
    B,
    H,
    N,
    M,
    D,
    Dv,
    scale,
    mask,
    spec: { D, Dv, mask: mask !== undefined },
    uniforms: {
      B,
      H,
      N,
      M,
      scale,
      kvBatch: kb === 1 ? 0 : kh * M * D,
      kvHead: kh === 1 ? 0 : M * D,
      vBatch: vb === 1 ? 0 : vh * M * Dv,
      vHead: vh === 1 ? 0 : M * Dv,
      ...maskStrides,
      dBlocks: Math.floor(D / 8) * 8,
    },
  };
}

/**
 * Whether the block-wise products on the matmul run this attention (attention-gemm.ts): CPU adapters with the
 * subgroup-broadcast matmul, no mask, k unbroadcast, v unbroadcast or one matrix shared by all heads (as the
 * flow field's coordinates).
 */
function gemmPathApplies(p: AttentionPlan, k: Tensor, v: Tensor): boolean {
  const full = (t: Tensor) => t.shape[0] === p.B && t.shape[1] === p.H;
  const shared = (t: Tensor) => t.shape[0] === 1 && t.shape[1] === 1;
  return !p.mask && full(k) && (full(v) || shared(v)) && matmulVariantFor(activeDevice()) === 'broadcast';
}

/**
 * Scaled dot-product attention softmax(q k^T * scale + mask) v as a memory-efficient kernel (online softmax,
 * no N x M buffer), with a FlashAttention-2 style backward that recomputes probabilities from the saved
 * log-sum-exp. q [B, H, N, D]; k, v [B|1, H|1, M, D|Dv]. On CPU adapters the backward, and a training forward
 * whose probabilities fit SAVED_PROBS_BYTES, run block-wise on the matmul instead (attention-gemm.ts).
 */
export const flashAttention = defineOp('attention', {
  forward: (ctx, q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}) => {
    const p = planAttention('attention', q, k, v, options);
    // Training on CPU adapters: when every probability block fits the budget, the forward computes them on the
    // matmul and keeps them, so the backward starts from P instead of recomputing it.
    if (
      ctx.needsGrad.some(Boolean) &&
      gemmPathApplies(p, k, v) &&
      [q, k, v].every((t) => t.dtype === 'float32') &&
      p.N * p.M * p.Dv > 0 &&
      canSaveProbs(q, k)
    ) {
      const { out, probs } = attentionForwardGemm(q, k, v, p.scale);
      ctx.save({ probs });
      return out;
    }
    const out = emptyTensor([p.B, p.H, p.N, p.Dv], floatResult('attention', [q, k, v]), 'attention');
    const lse = emptyTensor([p.B, p.H, p.N], 'float32', 'attention');
    if (out.size > 0) {
      const inputs = p.mask ? [q, k, v, p.mask] : [q, k, v];
      // Adapters where the subgroup-broadcast matmul wins (CPU implementations) get the same scheme here.
      if (matmulVariantFor(activeDevice()) === 'broadcast') {
        const spec = { ...p.spec, vecQK: p.D % 4 === 0, vecV: p.Dv % 4 === 0 };
        launch(
          attentionForwardBroadcastKernel(spec),
          inputs,
          [out, lse],
          p.uniforms,
          attentionBroadcastGrid(p.B * p.H, p.N),
        );
      } else {
        launch(attentionForwardKernel(p.spec), inputs, [out, lse], p.uniforms, attentionForwardGrid(p.B * p.H, p.N));
      }
    }
    ctx.save({ lse });
    return out;
  },
  backward: ({ args: [q, k, v, options], outputs: [out], saved, needsGrad }, g) => {
    const p = planAttention('attention', q, k, v, options ?? {});
    const base = p.mask ? [q, k, v, p.mask] : [q, k, v];
    // delta_n = dO_n . O_n, the softmax-backward correction shared by both passes.
    const delta = sum(mul(g, out!), -1);
    if (saved.probs || gemmPathApplies(p, k, v)) {
      const want: [boolean, boolean, boolean] = [needsGrad[0] ?? false, needsGrad[1] ?? false, needsGrad[2] ?? false];
      const [dq, dk, dv] = attentionBackwardGemm({
        q,
        k,
        v,
        g,
        ...(saved.probs ? { probs: saved.probs } : { lse: saved.lse! }),
        delta,
        scale: p.scale,
        want,
      });
      if (!dv || (v.shape[0] === p.B && v.shape[1] === p.H)) return [dq, dk, dv];
      const dvShared = sumTo(dv, v.shape);
      dv.dispose();
      return [dq, dk, dvShared];
    }
    let dq: Tensor | null = null;
    if (needsGrad[0]) {
      dq = emptyTensor(q.shape, 'float32', 'attention.backward');
      launch(
        attentionGradQKernel(p.spec),
        [...base, g, saved.lse, delta],
        [dq],
        p.uniforms,
        attentionGrid(p.B * p.H * p.N),
      );
    }
    let dk: Tensor | null = null;
    let dv: Tensor | null = null;
    if (needsGrad[1] || needsGrad[2]) {
      const wantV = needsGrad[2] ?? false;
      const dkFull = emptyTensor([p.B, p.H, p.M, p.D], 'float32', 'attention.backward');
      const dvFull = wantV ? emptyTensor([p.B, p.H, p.M, p.Dv], 'float32', 'attention.backward') : null;
      launch(
        attentionGradKVKernel({ ...p.spec, wantV }),
        [...base, g, saved.lse, delta],
        dvFull ? [dkFull, dvFull] : [dkFull],
        p.uniforms,
        attentionGrid(p.B * p.H * p.M),
      );
      // Keys/values shared across batch entries or heads collect the gradient of every user.
      if (needsGrad[1]) dk = sumTo(dkFull, k.shape);
      if (dvFull) dv = sumTo(dvFull, v.shape);
    }
    return [dq, dk, dv];
  },
});

/**
 * Multi-head attention on tokens: q [B, N, heads * D], k [B, M, heads * D], v [B, M, heads * Dv] (the projections'
 * outputs) to [B, N, heads * Dv], head h using channels h * D.. of each. The same math as splitting the heads,
 * `attention`, and merging them; training on CPU adapters reads and writes the heads in place (attention-gemm.ts),
 * which saves the four layout copies each way.
 */
export function multiHeadAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: { heads: number; scale?: number },
): Tensor {
  const { heads } = options;
  const ok =
    q.rank === 3 &&
    k.rank === 3 &&
    v.rank === 3 &&
    Number.isInteger(heads) &&
    heads > 0 &&
    q.shape[2]! % heads === 0 &&
    v.shape[2]! % heads === 0 &&
    k.shape[2] === q.shape[2] &&
    k.shape[0] === q.shape[0] &&
    v.shape[0] === q.shape[0] &&
    v.shape[1] === k.shape[1];
  if (!ok)
    throw new Error(
      `multiHeadAttention: expected q [B, N, heads * D], k [B, M, heads * D], v [B, M, heads * Dv] with ${heads} heads, got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}`,
    );
  const { B, N, M, D, Dv } = tokenDims(q, k, v, heads);
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const training = isGradEnabled() && [q, k, v].some((t) => t.requiresGrad);
  if (
    training &&
    matmulVariantFor(activeDevice()) === 'broadcast' &&
    [q, k, v].every((t) => t.dtype === 'float32') &&
    N * M * D * Dv > 0 &&
    tokensFitOneBlock(q, k, heads)
  )
    return tokenAttention(q, k, v, heads, scale);
  const split = (x: Tensor, rows: number, d: number) => permute(reshape(x, [B, rows, heads, d]), [0, 2, 1, 3]);
  const out = flashAttention(split(q, N, D), split(k, M, D), split(v, M, Dv), { scale });
  return reshape(permute(out, [0, 2, 1, 3]), [B, N, heads * Dv]);
}

/** multiHeadAttention's in-place-heads path: the forward keeps P, the backward starts from it. */
const tokenAttention = defineOp('attention_heads', {
  forward: (ctx, q: Tensor, k: Tensor, v: Tensor, heads: number, scale: number) => {
    const { out, probs } = tokenAttentionForward(q, k, v, heads, scale);
    ctx.save({ probs });
    return out;
  },
  backward: ({ args: [q, k, v, heads, scale], outputs: [out], saved, needsGrad }, g) => {
    const { B, N, Dv } = tokenDims(q, k, v, heads);
    // delta = rowsum(dO * O) per head, ordered as P's rows: [B, heads, N].
    const perToken = sum(reshape(mul(g, out!), [B, N, heads, Dv]), -1);
    const delta = heads === 1 ? perToken : permute(perToken, [0, 2, 1]);
    return tokenAttentionBackward(q, k, v, g, saved.probs, delta, heads, scale, needsGrad);
  },
});

/** The same attention, materialised with matmul + softmax (the reference path the benchmarks compare against). */
/** softmax(q k^T * scale + mask) over the keys, materialised as [B, H, N, M]. */
function attentionProbs(q: Tensor, k: Tensor, scale: number, mask?: Tensor): Tensor {
  let scores = mul(matmul(q, transpose(k)), scale);
  if (mask) scores = add(scores, mask);
  return softmax(scores, -1);
}

export function attentionMaterialized(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  return matmul(attentionProbs(q, k, options.scale ?? 1 / Math.sqrt(q.shape[3]!), options.mask), v);
}

export interface AttentionMapOptions {
  scale?: number;
  /** Softmax temperature: scores are divided by it. */
  tau?: number;
  /** Average over heads: [B, N, M] instead of [B, H, N, M]. */
  headMean?: boolean;
}

/** The softmax attention map softmax(q k^T * scale / tau), materialised (for inspection and tests). */
export function attentionMap(q: Tensor, k: Tensor, options: AttentionMapOptions = {}): Tensor {
  const p = attentionProbs(q, k, (options.scale ?? 1 / Math.sqrt(q.shape[3]!)) / (options.tau ?? 1));
  return options.headMean ? mean(p, 1) : p;
}

/**
 * attention(q, k, v): the flash kernel, or `{ out, attention }` when `returnAttention` is set ('full':
 * [B, H, N, M]; 'headMean': [B, N, M]). The returned map is computed separately and is not differentiable.
 */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options?: AttentionOptions & { returnAttention?: false },
): Tensor;
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions & { returnAttention: 'full' | 'headMean' },
): { out: Tensor; attention: Tensor };
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions & { returnAttention?: false | 'full' | 'headMean' } = {},
): Tensor | { out: Tensor; attention: Tensor } {
  const { returnAttention, ...rest } = options;
  const out = flashAttention(q, k, v, rest);
  if (!returnAttention) return out;
  const map = noGrad(() => {
    const p = attentionProbs(q, k, rest.scale ?? 1 / Math.sqrt(q.shape[3]!), rest.mask);
    return returnAttention === 'headMean' ? mean(p, 1) : p;
  });
  return { out, attention: map };
}
