import { type MatmulVariant, matmulAlignment, matmulGrid, matmulKernel } from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { type Device, activeDevice } from '../device/device.js';
import { broadcastShapes, formatShape, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { emptyTensor, floatResult, launch } from '../forward/launch.js';
import { sum, sumTo } from './reduce.js';
import { expand, reshape } from './shape.js';

export type { MatmulVariant } from '@leffa-webgpu/kernels-wgsl';

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor;
  /** 'col': bias[n] added to every row (Linear); 'row': bias[m] added to every column (1x1 conv). */
  biasMode?: 'col' | 'row';
  /**
   * The softmax backward on the product, in the same dispatch: C = scale * probs * (op(A) op(B) - delta[row]), with
   * `probs` shaped as C and `delta` one value per row of every batch. Not with a bias.
   */
  softmaxGrad?: { probs: Tensor; delta: Tensor; scale: number };
  /** C = scale * op(A) op(B) (+ bias), scaled as it is stored. Not with softmaxGrad, which has its own. */
  scale?: number;
  /**
   * With transA, a batch of 1 and the 'broadcast' kernel (see `rowSumsFused`): the row sums of op(A) are written
   * into this [M] float32 tensor by the same dispatch.
   */
  rowSumsA?: Tensor;
  /**
   * Where each operand's matrices lie in its buffer when not stored one after another (see MatrixLayout): e.g.
   * one head's [N, D] slice of [B, N, heads * D] tokens. Not with softmaxGrad or rowSumsA, whose extra tensors
   * are laid out as a contiguous C.
   */
  layoutA?: MatrixLayout;
  layoutB?: MatrixLayout;
  layoutC?: MatrixLayout;
}

/**
 * A batch of stored matrices in one buffer, the batch index split as outer * heads + inner (`dims.heads`):
 * matrix (outer, inner) starts at outer * stride + inner * headStride and its rows are `ld` elements apart.
 */
export interface MatrixLayout {
  ld: number;
  stride: number;
  headStride: number;
}

/** Matrices of rows x cols stored one after another (or one matrix shared by the whole batch). */
const contiguousLayout = (rows: number, cols: number, heads: number, shared = false): MatrixLayout =>
  shared ? { ld: cols, stride: 0, headStride: 0 } : { ld: cols, stride: heads * rows * cols, headStride: rows * cols };

/** Refuses a layout whose last matrix's last element lies past the operand (its reads would be clamped, silently). */
function checkLayout(
  name: string,
  t: Tensor,
  { ld, stride, headStride }: MatrixLayout,
  outer: number,
  heads: number,
  [rows, cols]: [number, number],
): void {
  if (rows === 0 || cols === 0) return;
  const last = (outer - 1) * stride + (heads - 1) * headStride + (rows - 1) * ld + cols - 1;
  if (cols > ld || last >= t.size)
    throw new Error(
      `gemm: operand ${name} ${formatShape(t.shape)} holds ${t.size} elements, but ${outer} x ${heads} matrices of ${rows} x ${cols} at ld ${ld}, stride ${stride}, head stride ${headStride} reach element ${last}${cols > ld ? ` and rows of ${cols} overlap at ld ${ld}` : ''}`,
    );
}

/** Whether every row of every matrix of `layout` starts on a vec4 boundary. */
const vec4Aligned = ({ ld, stride, headStride }: MatrixLayout) =>
  ld % 4 === 0 && stride % 4 === 0 && headStride % 4 === 0;

/** Whether `gemm` can write op(A)'s row sums alongside the product (GemmOptions.rowSumsA) on this device. */
export const rowSumsFused = (device: Device = activeDevice()) => matmulVariantFor(device) === 'broadcast';

let forcedVariant: MatmulVariant | null = null;

/**
 * Overrides the adapter-based kernel choice for every later matmul (null restores it). For tests and
 * benchmarks that exercise each variant on one adapter; 'broadcast' needs the subgroups feature.
 */
export function setMatmulVariant(variant: MatmulVariant | null): void {
  forcedVariant = variant;
}

/**
 * The kernel for this adapter: CPU implementations (lavapipe) pay per loaded value, not per FMA, so they
 * get the subgroup-broadcast kernel when subgroups hold at least its 8 lanes, else the register-tiled one;
 * GPUs get workgroup-memory tiling.
 */
export function matmulVariantFor(device: Device): MatmulVariant {
  if (forcedVariant) return forcedVariant;
  if (!device.report.isCpu) return 'tiled';
  const minSubgroup = (device.gpu as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo?.subgroupMinSize ?? 0;
  return device.hasSubgroups && minSubgroup >= 8 ? 'broadcast' : 'register';
}

/**
 * The raw kernel call: batched op(A) @ op(B) over `batch` matrices, A and B given as flat buffers with a
 * batch stride of either one matrix or 0 (broadcast), or as laid out by options.layoutA/B. Output is [batch, M, N]
 * (or `outShape`, same size), or written as options.layoutC places it (every element of `outShape` written once).
 * Not recorded by autograd.
 */
export function gemm(
  a: Tensor,
  b: Tensor,
  dims: {
    batch: number;
    M: number;
    N: number;
    K: number;
    broadcastA?: boolean;
    broadcastB?: boolean;
    /** Batch entries per outer entry of the layouts (default 1); must divide batch. */
    heads?: number;
  },
  options: GemmOptions = {},
  outShape: readonly number[] = [dims.batch, dims.M, dims.N],
): Tensor {
  const { batch, M, N, K } = dims;
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const out = emptyTensor(outShape, floatResult('matmul', options.bias ? [a, b, options.bias] : [a, b]), 'matmul');
  if (out.size === 0) return out;
  const biasMode = options.bias ? (options.biasMode ?? 'col') : 'none';
  const variant = matmulVariantFor(activeDevice());
  const { grid, tilesM, tilesN, span } = matmulGrid(variant, M, N, batch);
  const { softmaxGrad, rowSumsA } = options;
  if (softmaxGrad && (softmaxGrad.probs.size !== out.size || softmaxGrad.delta.size !== batch * M))
    throw new Error(
      `gemm: softmaxGrad needs probs of the output's ${out.size} elements and one delta per row (${batch * M}), got ${softmaxGrad.probs.size} and ${softmaxGrad.delta.size}`,
    );
  if (rowSumsA && (!transA || batch !== 1 || rowSumsA.size !== M || variant !== 'broadcast'))
    throw new Error(
      `gemm: rowSumsA needs transA, a batch of 1, an [${M}] output and the broadcast kernel (got transA ${transA}, batch ${batch}, ${rowSumsA.size} elements, '${variant}')`,
    );
  const heads = dims.heads ?? 1;
  const layoutA = options.layoutA ?? contiguousLayout(transA ? K : M, transA ? M : K, heads, dims.broadcastA);
  const layoutB = options.layoutB ?? contiguousLayout(transB ? N : K, transB ? K : N, heads, dims.broadcastB);
  const layoutC = options.layoutC ?? contiguousLayout(M, N, heads);
  if (batch % heads !== 0 || ((softmaxGrad || rowSumsA) && options.layoutC))
    throw new Error(
      `gemm: ${batch} batch entries in groups of ${heads} heads${options.layoutC ? ', a C layout with softmaxGrad or rowSumsA' : ''}: expected heads to divide the batch and a contiguous C for fused extras`,
    );
  const outer = batch / heads;
  checkLayout('A', a, layoutA, outer, heads, transA ? [K, M] : [M, K]);
  checkLayout('B', b, layoutB, outer, heads, transB ? [N, K] : [K, N]);
  checkLayout('C', out, layoutC, outer, heads, [M, N]);
  const aligned = matmulAlignment(transA, transB, M, N, K);
  launch(
    matmulKernel({
      transA,
      transB,
      bias: biasMode,
      variant,
      // C stored as vec4 where each lane's four columns are adjacent: a quarter of the store loops.
      vecC: N % 4 === 0 && vec4Aligned(layoutC),
      vecA: aligned.vecA && vec4Aligned(layoutA),
      vecB: aligned.vecB && vec4Aligned(layoutB),
      ...(softmaxGrad ? { softmaxGrad: true } : {}),
      ...(options.scale !== undefined ? { scaled: true } : {}),
      ...(rowSumsA ? { rowSumsA: true } : {}),
    }),
    [a, b, ...(options.bias ? [options.bias] : []), ...(softmaxGrad ? [softmaxGrad.probs, softmaxGrad.delta] : [])],
    [out, ...(rowSumsA ? [rowSumsA] : [])],
    {
      M,
      N,
      K,
      strideA: layoutA.stride,
      strideB: layoutB.stride,
      strideC: layoutC.stride,
      headStrideA: layoutA.headStride,
      headStrideB: layoutB.headStride,
      headStrideC: layoutC.headStride,
      lda: layoutA.ld,
      ldb: layoutB.ld,
      ldc: layoutC.ld,
      heads,
      tilesM,
      tilesN,
      batches: batch,
      span,
      ...(softmaxGrad ? { alpha: softmaxGrad.scale } : options.scale !== undefined ? { alpha: options.scale } : {}),
    },
    grid,
  );
  return out;
}

function checkFloat(op: string, ...ts: Tensor[]): void {
  floatResult(op, ts);
}

interface MatmulPlan {
  batchShape: number[];
  M: number;
  N: number;
  K: number;
  /** Output shape with 1-D operands' dims removed, as torch.matmul returns it. */
  outShape: number[];
}

function planMatmul(a: Tensor, b: Tensor): MatmulPlan {
  checkFloat('matmul', a, b);
  if (a.rank === 0 || b.rank === 0) throw new Error('matmul: operands must have at least one dimension');
  const a2 = a.rank === 1 ? [1, a.shape[0]!] : a.shape;
  const b2 = b.rank === 1 ? [b.shape[0]!, 1] : b.shape;
  const [M, K] = a2.slice(-2) as [number, number];
  const [K2, N] = b2.slice(-2) as [number, number];
  if (K !== K2) {
    throw new Error(
      `matmul: inner dimensions differ: ${formatShape(a.shape)} @ ${formatShape(b.shape)} (${K} vs ${K2})`,
    );
  }
  const batchShape = broadcastShapes('matmul', a2.slice(0, -2), b2.slice(0, -2));
  const outShape = [...batchShape, ...(a.rank === 1 ? [] : [M]), ...(b.rank === 1 ? [] : [N])];
  return { batchShape, M, N, K, outShape };
}

/**
 * An operand's batch layout: its own matrices (stride one matrix), one matrix shared by the whole batch
 * (stride 0), or, for partial broadcasts, a copy expanded to the full batch.
 */
function batchOperand(t: Tensor, batchShape: number[], rows: number, cols: number): { t: Tensor; shared: boolean } {
  const own = sizeOf(t.shape.slice(0, -2));
  const full = sizeOf(batchShape);
  if (own === full) return { t, shared: false };
  if (own === 1) return { t, shared: true };
  return { t: expand(reshape(t, [...t.shape.slice(0, -2), rows, cols]), [...batchShape, rows, cols]), shared: false };
}

/** Batched matrix product with broadcasting over leading dims (torch.matmul semantics, 1-D operands included). */
export const matmul = defineOp('matmul', {
  forward: (_ctx, a: Tensor, b: Tensor) => {
    const { batchShape, M, N, K, outShape } = planMatmul(a, b);
    const A = batchOperand(a, batchShape, M, K);
    const B = batchOperand(b, batchShape, K, N);
    const out = gemm(
      A.t,
      B.t,
      { batch: sizeOf(batchShape), M, N, K, broadcastA: A.shared, broadcastB: B.shared },
      {},
      outShape,
    );
    if (A.t !== a) A.t.dispose();
    if (B.t !== b) B.t.dispose();
    return out;
  },
  backward: ({ args: [a, b], needsGrad }, g) => {
    const { batchShape, M, N, K } = planMatmul(a, b);
    const batch = sizeOf(batchShape);
    // Gradients over the full batch, then summed over the dims each operand was broadcast along.
    const reduceTo = (full: Tensor, t: Tensor, rows: number, cols: number) => {
      const shaped = t.rank >= 2 ? t.shape : [rows, cols];
      const r = sumTo(full.alias([...batchShape, rows, cols]), shaped);
      return t.rank >= 2 ? r : reshape(r, t.shape);
    };
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (needsGrad[0]) {
      const B = batchOperand(b, batchShape, K, N);
      ga = reduceTo(gemm(g, B.t, { batch, M, N: K, K: N, broadcastB: B.shared }, { transB: true }), a, M, K);
    }
    if (needsGrad[1]) {
      const A = batchOperand(a, batchShape, M, K);
      gb = reduceTo(gemm(A.t, g, { batch, M: K, N, K: M, broadcastA: A.shared }, { transA: true }), b, K, N);
    }
    return [ga, gb];
  },
});

/** x @ weight^T + bias over the last axis of x (PyTorch's F.linear; weight is [out, in]). */
export const linear = defineOp('linear', {
  forward: (_ctx, x: Tensor, weight: Tensor, bias?: Tensor) => {
    checkFloat('linear', x, weight);
    const K = x.shape[x.rank - 1]!;
    if (weight.rank !== 2 || weight.shape[1] !== K) {
      throw new Error(
        `linear: weight ${formatShape(weight.shape)} does not fit input ${formatShape(x.shape)} (expected [out, ${K}])`,
      );
    }
    const N = weight.shape[0]!;
    if (bias && (bias.rank !== 1 || bias.shape[0] !== N)) {
      throw new Error(
        `linear: bias ${formatShape(bias.shape)} does not match weight ${formatShape(weight.shape)} (expected [${N}])`,
      );
    }
    const M = x.size / Math.max(K, 1);
    return gemm(x, weight, { batch: 1, M, N, K }, { transB: true, bias, biasMode: 'col' }, [
      ...x.shape.slice(0, -1),
      N,
    ]);
  },
  backward: ({ args: [x, weight, bias], needsGrad }, g) => {
    const K = x.shape[x.rank - 1]!;
    const N = weight.shape[0]!;
    const M = x.size / Math.max(K, 1);
    const gx = needsGrad[0] ? gemm(g, weight, { batch: 1, M, N: K, K: N }, {}, x.shape) : null;
    // The bias gradient (dY's column sums) comes with the weight gradient dY^T X where the kernel can sum op(A)'s
    // rows on the way: one dispatch fewer per Linear layer.
    const fuseBias = bias?.dtype === 'float32' && needsGrad[1] && needsGrad[2] && rowSumsFused();
    const gbFused = fuseBias ? emptyTensor([N], 'float32', 'linear.backward') : undefined;
    const gw = needsGrad[1]
      ? gemm(
          g,
          x,
          { batch: 1, M: N, N: K, K: M },
          { transA: true, ...(gbFused ? { rowSumsA: gbFused } : {}) },
          weight.shape,
        )
      : null;
    const gb = gbFused ?? (bias && needsGrad[2] ? sum(g.alias([M, N]), 0) : null);
    return bias ? [gx, gw, gb] : [gx, gw];
  },
});
