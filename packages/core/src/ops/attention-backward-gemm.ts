import type { Tensor } from '../tensor/tensor.js';
import { add, map } from './elementwise.js';
import { gemm } from './matmul.js';
import { concat, narrow } from './shape.js';

/**
 * Largest score block [heads, rows, M] one step materialises. Small enough that a few of them (S, P, dP, dS)
 * stay far below the storage-binding limit, large enough that each product is one long batched matmul.
 */
const BLOCK_BYTES = 32 * 2 ** 20;

export interface GemmBackwardInputs {
  /**
   * q [B, H, N, D], k [B, H, M, D] (full batch and heads), dO [B, H, N, Dv]; v [B, H, M, Dv], or [1, 1, M, Dv]
   * shared by every batch entry and head (as the Leffa flow field's key coordinates).
   */
  q: Tensor;
  k: Tensor;
  v: Tensor;
  g: Tensor;
  /** Row log-sum-exp of the scaled scores [B, H, N] (the forward's) and delta = rowsum(dO * O) [B, H, N]. */
  lse: Tensor;
  delta: Tensor;
  scale: number;
  want: [boolean, boolean, boolean];
}

/**
 * The attention backward on the batched matmul kernel, block by block of heads and query rows: per block
 * S = q k^T, P = exp(scale S - lse), dV += P^T dO, dP = dO v^T, dS = scale P (dP - delta), dQ = dS k,
 * dK += dS^T q. On CPU adapters, where the subgroup-broadcast matmul runs near the FMA ceiling, this beats
 * the per-row FlashAttention-2 kernels (which reload k and v for every query row) several times over, at the
 * cost of one score block of memory. A v shared by all heads enters the products with batch stride 0; its
 * gradient comes back per head, [B, H, M, Dv]. Not recorded by autograd.
 */
export function attentionBackwardGemm(
  { q, k, v, g, lse, delta, scale, want }: GemmBackwardInputs,
  blockBytes = BLOCK_BYTES,
): [Tensor | null, Tensor | null, Tensor | null] {
  const [B, H, N, D] = q.shape as [number, number, number, number];
  const M = k.shape[2]!;
  const Dv = v.shape[3]!;
  const BH = B * H;
  const sharedV = v.shape[0] === 1 && v.shape[1] === 1 && BH > 1;
  // Tensors are contiguous, so the [B * H, ...] views share the inputs' storage (nothing here writes to them).
  const flat = (x: Tensor, shape: number[]) => x.alias(shape);
  const q3 = flat(q, [BH, N, D]);
  const k3 = flat(k, [BH, M, D]);
  const v3 = flat(v, [sharedV ? 1 : BH, M, Dv]);
  const g3 = flat(g, [BH, N, Dv]);
  const lse3 = flat(lse, [BH, N, 1]);
  const delta3 = flat(delta, [BH, N, 1]);

  const rowsPerBlock = Math.max(1, Math.floor(blockBytes / (M * 4)));
  const rows = Math.min(N, rowsPerBlock);
  const heads = rows === N ? Math.max(1, Math.min(BH, Math.floor(rowsPerBlock / N))) : 1;
  const part = (x: Tensor, h0: number, h: number, n0: number, n: number) => {
    const byHead = h === x.shape[0] ? x : narrow(x, 0, h0, h);
    return n === x.shape[1] ? byHead : narrow(byHead, 1, n0, n);
  };
  const accumulate = (sumSoFar: Tensor | null, next: Tensor) => {
    if (!sumSoFar) return next;
    const s = add(sumSoFar, next);
    sumSoFar.dispose();
    next.dispose();
    return s;
  };

  const dqGroups: Tensor[] = [];
  const dkGroups: Tensor[] = [];
  const dvGroups: Tensor[] = [];
  for (let h0 = 0; h0 < BH; h0 += heads) {
    const h = Math.min(heads, BH - h0);
    const kh = part(k3, h0, h, 0, M);
    const vh = sharedV ? v3 : part(v3, h0, h, 0, M);
    const dqRows: Tensor[] = [];
    let dk: Tensor | null = null;
    let dv: Tensor | null = null;
    for (let n0 = 0; n0 < N; n0 += rows) {
      const n = Math.min(rows, N - n0);
      const qc = part(q3, h0, h, n0, n);
      const gc = part(g3, h0, h, n0, n);
      const s = gemm(qc, kh, { batch: h, M: n, N: M, K: D }, { transB: true });
      const p = map('attention.backward', 'exp(a * alpha - b)', [s, part(lse3, h0, h, n0, n)], scale);
      s.dispose();
      if (want[2]) dv = accumulate(dv, gemm(p, gc, { batch: h, M, N: Dv, K: n }, { transA: true }));
      const dp = gemm(gc, vh, { batch: h, M: n, N: M, K: Dv, broadcastB: sharedV }, { transB: true });
      const ds = map('attention.backward', 'a * (b - c) * alpha', [p, dp, part(delta3, h0, h, n0, n)], scale);
      p.dispose();
      dp.dispose();
      if (want[0]) dqRows.push(gemm(ds, kh, { batch: h, M: n, N: D, K: M }));
      if (want[1]) dk = accumulate(dk, gemm(ds, qc, { batch: h, M, N: D, K: n }, { transA: true }));
      ds.dispose();
    }
    if (want[0]) dqGroups.push(dqRows.length === 1 ? dqRows[0]! : concat(dqRows, 1));
    if (dk) dkGroups.push(dk);
    if (dv) dvGroups.push(dv);
  }
  const join = (groups: Tensor[], shape: readonly number[]) =>
    groups.length === 0 ? null : (groups.length === 1 ? groups[0]! : concat(groups, 0)).alias(shape);
  // A shared v's gradient is per head here: the caller sums it over batch entries and heads.
  return [join(dqGroups, q.shape), join(dkGroups, k.shape), join(dvGroups, [B, H, M, Dv])];
}
