import { activeDevice } from '../device/device.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, map } from './elementwise.js';
import { gemm } from './matmul.js';
import { concat, narrow } from './shape.js';
import { softmax } from './softmax.js';

/*
 * Attention on the batched matmul kernel, block by block of heads and query rows. On CPU adapters, where the
 * subgroup-broadcast matmul runs near the FMA ceiling, products over a materialised score block beat the
 * per-row FlashAttention-2 kernels (which reload k and v for every query row) several times over in the
 * backward, at the cost of one score block of memory. When a training forward can afford to keep every block
 * of probabilities (SAVED_PROBS_BYTES), it computes them here too, and the backward skips recomputing them.
 */

/**
 * Largest score block [heads, rows, M] one step materialises. Small enough that a few of them (S, P, dP, dS)
 * stay far below the storage-binding limit, large enough that each product is one long batched matmul.
 */
const BLOCK_BYTES = 32 * 2 ** 20;

/** The most probability memory one attention call keeps from its forward for its backward. */
export const SAVED_PROBS_BYTES = 128 * 2 ** 20;

interface ScoreBlock {
  /** First head (of the B * H) and head count; first query row and row count. */
  h0: number;
  h: number;
  n0: number;
  n: number;
}

/** The blocks, in order: whole heads per block when a head's N x M scores fit, else row slices of one head. */
function scoreBlocks(BH: number, N: number, M: number, blockBytes: number): ScoreBlock[] {
  const rowsPerBlock = Math.max(1, Math.floor(blockBytes / (M * 4)));
  const rows = Math.min(N, rowsPerBlock);
  const heads = rows === N ? Math.max(1, Math.min(BH, Math.floor(rowsPerBlock / N))) : 1;
  const blocks: ScoreBlock[] = [];
  for (let h0 = 0; h0 < BH; h0 += heads)
    for (let n0 = 0; n0 < N; n0 += rows)
      blocks.push({ h0, h: Math.min(heads, BH - h0), n0, n: Math.min(rows, N - n0) });
  return blocks;
}

/** Rows n0.. of heads h0.. of a [BH, N, ...] tensor (a view when the block spans it). */
function part(x: Tensor, { h0, h, n0, n }: ScoreBlock): Tensor {
  const byHead = h === x.shape[0] ? x : narrow(x, 0, h0, h);
  return n === x.shape[1] ? byHead : narrow(byHead, 1, n0, n);
}

/** The [BH, ...] views (tensors are contiguous, so they share storage); a v shared by all heads stays one matrix. */
function flatten(q: Tensor, k: Tensor, v: Tensor) {
  const [B, H, N, D] = q.shape as [number, number, number, number];
  const M = k.shape[2]!;
  const Dv = v.shape[3]!;
  const BH = B * H;
  const sharedV = v.shape[0] === 1 && v.shape[1] === 1 && BH > 1;
  return {
    B,
    H,
    N,
    M,
    D,
    Dv,
    BH,
    sharedV,
    q3: q.alias([BH, N, D]),
    k3: k.alias([BH, M, D]),
    v3: v.alias([sharedV ? 1 : BH, M, Dv]),
  };
}

/** Whether a forward on q [B, H, N, D], k [.., M, D] keeps its probabilities (all blocks within SAVED_PROBS_BYTES). */
export const canSaveProbs = (q: Tensor, k: Tensor) =>
  q.shape[0]! * q.shape[1]! * q.shape[2]! * k.shape[2]! * 4 <= SAVED_PROBS_BYTES;

/**
 * softmax(q k^T * scale) v block by block: S = scale q k^T (scaled as it is stored), P = softmax(S), O = P v. Returns the output
 * [B, H, N, Dv] and each block's P for attentionBackwardGemm. q, k as attentionBackwardGemm takes them.
 */
export function attentionForwardGemm(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  scale: number,
  blockBytes = BLOCK_BYTES,
): { out: Tensor; probs: Tensor[] } {
  const { B, H, N, M, D, Dv, BH, sharedV, q3, k3, v3 } = flatten(q, k, v);
  const probs: Tensor[] = [];
  const outs: Tensor[] = [];
  const blocks = scoreBlocks(BH, N, M, blockBytes);
  for (const block of blocks) {
    const kh = part(k3, { ...block, n0: 0, n: M });
    const vh = sharedV ? v3 : part(v3, { ...block, n0: 0, n: M });
    const s = gemm(part(q3, block), kh, { batch: block.h, M: block.n, N: M, K: D }, { transB: true, scale });
    const p = softmax(s, -1);
    s.dispose();
    probs.push(p);
    outs.push(gemm(p, vh, { batch: block.h, M: block.n, N: Dv, K: M, broadcastB: sharedV }));
  }
  return { out: joinBlocks(blocks, outs).alias([B, H, N, Dv]), probs };
}

/** Whether block b is the last row slice of its head group. */
const endsGroup = (blocks: readonly ScoreBlock[], b: number) =>
  b + 1 === blocks.length || blocks[b + 1]!.h0 !== blocks[b]!.h0;

/** Per-block [h, n, X] results as one [BH, N, X]: each head group's row slices, then the groups. */
function joinBlocks(blocks: readonly ScoreBlock[], parts: readonly Tensor[]): Tensor {
  const groups: Tensor[] = [];
  let rows: Tensor[] = [];
  parts.forEach((piece, b) => {
    rows.push(piece);
    if (endsGroup(blocks, b)) {
      groups.push(rows.length === 1 ? rows[0]! : concat(rows, 1));
      rows = [];
    }
  });
  return groups.length === 1 ? groups[0]! : concat(groups, 0);
}

export interface GemmBackwardInputs {
  /**
   * q [B, H, N, D], k [B, H, M, D] (full batch and heads), dO [B, H, N, Dv]; v [B, H, M, Dv], or [1, 1, M, Dv]
   * shared by every batch entry and head (as the Leffa flow field's key coordinates).
   */
  q: Tensor;
  k: Tensor;
  v: Tensor;
  g: Tensor;
  /** delta = rowsum(dO * O) [B, H, N]. */
  delta: Tensor;
  scale: number;
  want: [boolean, boolean, boolean];
  /** Either the row log-sum-exp of the scaled scores [B, H, N] (the flash forward's), to recompute P ... */
  lse?: Tensor;
  /** ... or the forward's P blocks (attentionForwardGemm with the same block size). */
  probs?: readonly Tensor[];
}

/**
 * The attention backward, per block: P (given, or exp(scale q k^T - lse)), dV += P^T dO, dS = scale P (dO v^T - delta)
 * (one product), dQ = dS k, dK += dS^T q. A v shared by all heads enters the products with batch
 * stride 0; its gradient comes back per head, [B, H, M, Dv]. Not recorded by autograd.
 */
export function attentionBackwardGemm(
  { q, k, v, g, lse, probs, delta, scale, want }: GemmBackwardInputs,
  blockBytes = BLOCK_BYTES,
): [Tensor | null, Tensor | null, Tensor | null] {
  const { B, H, N, M, D, Dv, BH, sharedV, q3, k3, v3 } = flatten(q, k, v);
  const g3 = g.alias([BH, N, Dv]);
  const delta3 = delta.alias([BH, N, 1]);
  const blocks = scoreBlocks(BH, N, M, blockBytes);
  if (probs ? probs.length !== blocks.length : !lse)
    throw new Error(
      `attentionBackwardGemm: needs lse or the forward's ${blocks.length} probability blocks, got ${probs ? probs.length : 'neither'}`,
    );
  const lse3 = lse?.alias([BH, N, 1]);
  const accumulate = (sumSoFar: Tensor | null, next: Tensor) => {
    if (!sumSoFar) return next;
    const s = add(sumSoFar, next);
    sumSoFar.dispose();
    next.dispose();
    return s;
  };

  const dqBlocks: Tensor[] = [];
  const dkGroups: Tensor[] = [];
  const dvGroups: Tensor[] = [];
  let dk: Tensor | null = null;
  let dv: Tensor | null = null;
  blocks.forEach((block, b) => {
    const { h, n } = block;
    const kh = part(k3, { ...block, n0: 0, n: M });
    const vh = sharedV ? v3 : part(v3, { ...block, n0: 0, n: M });
    const qc = part(q3, block);
    const gc = part(g3, block);
    let p = probs?.[b];
    if (!p) {
      const s = gemm(qc, kh, { batch: h, M: n, N: M, K: D }, { transB: true });
      p = map('attention.backward', 'exp(a * alpha - b)', [s, part(lse3!, block)], scale);
      s.dispose();
    }
    if (want[2]) dv = accumulate(dv, gemm(p, gc, { batch: h, M, N: Dv, K: n }, { transA: true }));
    // dS = scale P (dO v^T - delta), the softmax backward applied as the product dP is stored.
    const ds = gemm(
      gc,
      vh,
      { batch: h, M: n, N: M, K: Dv, broadcastB: sharedV },
      { transB: true, softmaxGrad: { probs: p, delta: part(delta3, block), scale } },
    );
    if (!probs) p.dispose();
    if (want[0]) dqBlocks.push(gemm(ds, kh, { batch: h, M: n, N: D, K: M }));
    if (want[1]) dk = accumulate(dk, gemm(ds, qc, { batch: h, M, N: D, K: n }, { transA: true }));
    ds.dispose();
    // The last row slice of this head group: its key and value gradients are complete.
    if (endsGroup(blocks, b)) {
      if (dk) dkGroups.push(dk);
      if (dv) dvGroups.push(dv);
      [dk, dv] = [null, null];
    }
  });
  const join = (groups: Tensor[], shape: readonly number[]) =>
    groups.length === 0 ? null : (groups.length === 1 ? groups[0]! : concat(groups, 0)).alias(shape);
  // A shared v's gradient is per head here: the caller sums it over batch entries and heads.
  return [
    want[0] ? joinBlocks(blocks, dqBlocks).alias(q.shape) : null,
    join(dkGroups, k.shape),
    join(dvGroups, [B, H, M, Dv]),
  ];
}

/*
 * The same products on attention's token layout: q [B, N, H * D], k [B, M, H * D], v [B, M, H * Dv], as the
 * q/k/v projections write them. Each head's matrix is read in place (rows H * D apart, heads D apart) and the
 * outputs are written the same way, so no copy splits or merges the heads. One block only (tokensFitOneBlock).
 */

/** Sizes of a token-layout attention with `heads` heads. */
export function tokenDims(q: Tensor, k: Tensor, v: Tensor, heads: number) {
  const [B, N, HD] = q.shape as [number, number, number];
  return { B, N, M: k.shape[1]!, D: HD / heads, Dv: v.shape[2]! / heads, BH: B * heads };
}

/**
 * Whether a token-layout attention's probabilities (every head and row, one block: no BLOCK_BYTES split) fit the
 * budget kept for the backward (SAVED_PROBS_BYTES) and one binding of the adapter. At most two score-sized tensors
 * are alive at once: S and P in the forward, P and dS in the backward.
 */
export function tokensFitOneBlock(q: Tensor, k: Tensor, heads: number): boolean {
  const bytes = q.shape[0]! * heads * q.shape[1]! * k.shape[1]! * 4;
  return bytes <= Math.min(SAVED_PROBS_BYTES, activeDevice().gpu.limits.maxStorageBufferBindingSize);
}

/** Where head h of batch entry b of a [B, rows, heads * d] token tensor lies, as a gemm operand. */
const headsOf = (rows: number, d: number, heads: number) => ({
  ld: heads * d,
  stride: rows * heads * d,
  headStride: d,
});

/** softmax(scale q_h k_h^T) v_h for every head: the output [B, N, H * Dv] and P [B * H, N, M] for the backward. */
export function tokenAttentionForward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  heads: number,
  scale: number,
): { out: Tensor; probs: Tensor } {
  const { B, N, M, D, Dv, BH } = tokenDims(q, k, v, heads);
  const s = gemm(
    q,
    k,
    { batch: BH, M: N, N: M, K: D, heads },
    { transB: true, scale, layoutA: headsOf(N, D, heads), layoutB: headsOf(M, D, heads) },
  );
  const probs = softmax(s, -1);
  s.dispose();
  const out = gemm(
    probs,
    v,
    { batch: BH, M: N, N: Dv, K: M, heads },
    { layoutB: headsOf(M, Dv, heads), layoutC: headsOf(N, Dv, heads) },
    [B, N, heads * Dv],
  );
  return { out, probs };
}

/**
 * Its backward from the forward's P: dV = P^T dO, dS = scale P (dO v^T - delta), dQ = dS k, dK = dS^T q, each
 * gradient in its input's token layout. delta = rowsum(dO * O) per head, [B * H, N]. Not recorded by autograd.
 */
export function tokenAttentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  g: Tensor,
  probs: Tensor,
  delta: Tensor,
  heads: number,
  scale: number,
  want: readonly boolean[],
): [Tensor | null, Tensor | null, Tensor | null] {
  const { N, M, D, Dv, BH } = tokenDims(q, k, v, heads);
  const [qL, kL, vL, gL] = [headsOf(N, D, heads), headsOf(M, D, heads), headsOf(M, Dv, heads), headsOf(N, Dv, heads)];
  const dv = want[2]
    ? gemm(probs, g, { batch: BH, M, N: Dv, K: N, heads }, { transA: true, layoutB: gL, layoutC: vL }, v.shape)
    : null;
  if (!want[0] && !want[1]) return [null, null, dv];
  const ds = gemm(
    g,
    v,
    { batch: BH, M: N, N: M, K: Dv, heads },
    { transB: true, layoutA: gL, layoutB: vL, softmaxGrad: { probs, delta, scale } },
  );
  const dq = want[0]
    ? gemm(ds, k, { batch: BH, M: N, N: D, K: M, heads }, { layoutB: kL, layoutC: qL }, q.shape)
    : null;
  const dk = want[1]
    ? gemm(ds, q, { batch: BH, M, N: D, K: N, heads }, { transA: true, layoutB: qL, layoutC: kL }, k.shape)
    : null;
  ds.dispose();
  return [dq, dk, dv];
}
