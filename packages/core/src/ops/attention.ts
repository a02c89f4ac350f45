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
import { noGrad } from '../autograd/grad-mode.js';
import { broadcastShapes, formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from './creation.js';
import { add, map, mul } from './elementwise.js';
import { emptyTensor, floatResult, launch } from './launch.js';
import { attentionBackwardGemm } from './attention-backward-gemm.js';
import { matmul, matmulVariantFor } from './matmul.js';
import { mean, sum, sumTo } from './reduce.js';
import { reshape, transpose } from './shape.js';
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
    new Error(`${op}: expected q [B, H, N, D], k [B|1, H|1, M, D], v [B|1, H|1, M, Dv], got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}`);
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw bad();
  const [B, H, N, D] = q.shape as [number, number, number, number];
  const [kb, kh, M, kd] = k.shape as [number, number, number, number];
  const [vb, vh, vm, Dv] = v.shape as [number, number, number, number];
  if (kd !== D || vm !== M || ![1, B].includes(kb) || ![1, H].includes(kh) || ![1, B].includes(vb) || ![1, H].includes(vh)) throw bad();
  floatResult(op, [q, k, v]);
  let mask: Tensor | undefined;
  let maskStrides = { maskB: 0, maskH: 0, maskN: 0 };
  if (options.mask) {
    const m = options.mask;
    const shape4 = [...new Array(4 - m.rank).fill(1), ...m.shape];
    if (m.rank > 4 || shape4[3] !== M) throw new Error(`${op}: mask ${formatShape(m.shape)} must end in M = ${M} and broadcast to [${B}, ${H}, ${N}, ${M}]`);
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
 * Scaled dot-product attention softmax(q k^T * scale + mask) v as a memory-efficient kernel (online softmax,
 * no N x M buffer), with a FlashAttention-2 style backward that recomputes probabilities from the saved
 * log-sum-exp. q [B, H, N, D]; k, v [B|1, H|1, M, D|Dv].
 */
export const flashAttention = defineOp('attention', {
  forward: (ctx, q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}) => {
    const p = planAttention('attention', q, k, v, options);
    const out = emptyTensor([p.B, p.H, p.N, p.Dv], floatResult('attention', [q, k, v]), 'attention');
    const lse = emptyTensor([p.B, p.H, p.N], 'float32', 'attention');
    if (out.size > 0) {
      const inputs = p.mask ? [q, k, v, p.mask] : [q, k, v];
      // Adapters where the subgroup-broadcast matmul wins (CPU implementations) get the same scheme here.
      if (matmulVariantFor(activeDevice()) === 'broadcast') {
        const spec = { ...p.spec, vecQK: p.D % 4 === 0, vecV: p.Dv % 4 === 0 };
        launch(attentionForwardBroadcastKernel(spec), inputs, [out, lse], p.uniforms, attentionBroadcastGrid(p.B * p.H, p.N));
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
    // CPU adapters with the subgroup-broadcast matmul: block-wise products on it (unmasked, unbroadcast k, v).
    const full = (t: Tensor) => t.shape[0] === p.B && t.shape[1] === p.H;
    if (!p.mask && full(k) && full(v) && matmulVariantFor(activeDevice()) === 'broadcast') {
      const want: [boolean, boolean, boolean] = [needsGrad[0] ?? false, needsGrad[1] ?? false, needsGrad[2] ?? false];
      return attentionBackwardGemm({ q, k, v, g, lse: saved.lse!, delta, scale: p.scale, want });
    }
    let dq: Tensor | null = null;
    if (needsGrad[0]) {
      dq = emptyTensor(q.shape, 'float32', 'attention.backward');
      launch(attentionGradQKernel(p.spec), [...base, g, saved.lse, delta], [dq], p.uniforms, attentionGrid(p.B * p.H * p.N));
    }
    let dk: Tensor | null = null;
    let dv: Tensor | null = null;
    if (needsGrad[1] || needsGrad[2]) {
      const wantV = needsGrad[2] ?? false;
      const dkFull = emptyTensor([p.B, p.H, p.M, p.D], 'float32', 'attention.backward');
      const dvFull = wantV ? emptyTensor([p.B, p.H, p.M, p.Dv], 'float32', 'attention.backward') : null;
      launch(attentionGradKVKernel({ ...p.spec, wantV }), [...base, g, saved.lse, delta], dvFull ? [dkFull, dvFull] : [dkFull], p.uniforms, attentionGrid(p.B * p.H * p.M));
      // Keys/values shared across batch entries or heads collect the gradient of every user.
      if (needsGrad[1]) dk = sumTo(dkFull, k.shape);
      if (dvFull) dv = sumTo(dvFull, v.shape);
    }
    return [dq, dk, dv];
  },
});

/** The same attention, materialised with matmul + softmax (the reference path the benchmarks compare against). */
export function attentionMaterialized(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const scale = options.scale ?? 1 / Math.sqrt(q.shape[3]!);
  let scores = mul(matmul(q, transpose(k)), scale);
  if (options.mask) scores = add(scores, options.mask);
  return matmul(softmax(scores, -1), v);
}

export interface AttentionMapOptions {
  scale?: number;
  /** Softmax temperature: scores are divided by it (Leffa: 2.0). */
  tau?: number;
  /** Average over heads: [B, N, M] instead of [B, H, N, M]. */
  headMean?: boolean;
}

/** The softmax attention map softmax(q k^T * scale / tau), materialised (for inspection and tests). */
export function attentionMap(q: Tensor, k: Tensor, options: AttentionMapOptions = {}): Tensor {
  const scale = (options.scale ?? 1 / Math.sqrt(q.shape[3]!)) / (options.tau ?? 1);
  const p = softmax(mul(matmul(q, transpose(k)), scale), -1);
  return options.headMean ? mean(p, 1) : p;
}

/**
 * attention(q, k, v): the flash kernel, or `{ out, attention }` when `returnAttention` is set ('full':
 * [B, H, N, M]; 'headMean': [B, N, M]). The returned map is computed separately and is not differentiable.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options?: AttentionOptions & { returnAttention?: false }): Tensor;
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
    let s = mul(matmul(q, transpose(k)), rest.scale ?? 1 / Math.sqrt(q.shape[3]!));
    if (rest.mask) s = add(s, rest.mask);
    const p = softmax(s, -1);
    return returnAttention === 'headMean' ? mean(p, 1) : p;
  });
  return { out, attention: map };
}

/** The normalised coordinates of a height x width key grid, row-major, (x, y) from (-1, -1) to (1, 1). */
export function keyGridCoordinates(height: number, width: number): Tensor {
  const c = new Float32Array(height * width * 2);
  const lin = (i: number, n: number) => (n === 1 ? 0 : -1 + (2 * i) / (n - 1));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      c[2 * (y * width + x)] = lin(x, width);
      c[2 * (y * width + x) + 1] = lin(y, height);
    }
  }
  return tensor(c, [1, 1, height * width, 2]);
}

export interface FlowFieldOptions {
  scale?: number;
  /** Softmax temperature (the Leffa paper uses 2.0). */
  tau?: number;
}

/**
 * Leffa's flow field: F = mean over heads of softmax(q k^T * scale / tau) @ C, where C holds the normalised
 * (x, y) of each key on its height x width grid. Computed by the flash kernel with C as a 2-wide value shared
 * by every batch entry and head, so the N x M map never exists. Returns [B, N, 2], differentiable in q and k.
 */
export function flowField(q: Tensor, k: Tensor, grid: { height: number; width: number }, options: FlowFieldOptions = {}): Tensor {
  const M = k.shape[2];
  if (grid.height * grid.width !== M) {
    throw new Error(`flowField: key grid ${grid.height}x${grid.width} has ${grid.height * grid.width} positions, k ${formatShape(k.shape)} has ${M} keys`);
  }
  const coords = keyGridCoordinates(grid.height, grid.width);
  const scale = (options.scale ?? 1 / Math.sqrt(q.shape[3]!)) / (options.tau ?? 1);
  return mean(flashAttention(q, k, coords, { scale }), 1);
}

/** [B, N, H*D] -> [B, H, N, D]. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [b, n, c] = x.shape as [number, number, number];
  if (x.rank !== 3 || c % heads !== 0) throw new Error(`splitHeads: ${formatShape(x.shape)} does not split into ${heads} heads`);
  return transpose(map('splitHeads', 'a', [x]).alias([b, n, heads, c / heads]), 1, 2);
}

/** [B, H, N, D] -> [B, N, H*D]. */
export function mergeHeads(x: Tensor): Tensor {
  const [b, h, n, d] = x.shape as [number, number, number, number];
  return transpose(x, 1, 2).alias([b, n, h * d]);
}

