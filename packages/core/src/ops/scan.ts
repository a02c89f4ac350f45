import { type ScanOp, chooseScanMode, scanGrid, scanKernel } from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { normalizeAxes, normalizeAxis, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { map } from './elementwise.js';
import { serialReduce } from './integer.js';
import { emptyTensor, launch } from '../forward/launch.js';
import { permute, reshape } from './shape.js';

type Axes = number | readonly number[] | undefined;

/** A prefix scan of x along `axis` (viewed as [O, N, I]), inclusive or exclusive, forwards or from the end. */
export function scanRaw(
  op: string,
  x: Tensor,
  axis: number,
  kind: ScanOp,
  exclusive: boolean,
  reverse: boolean,
): Tensor {
  const a = normalizeAxis(op, axis, Math.max(x.rank, 1));
  const O = sizeOf(x.shape.slice(0, a));
  const N = x.shape[a] ?? 1;
  const I = sizeOf(x.shape.slice(a + 1));
  const out = emptyTensor(x.shape, x.dtype, op);
  if (out.size === 0) return out;
  const mode = chooseScanMode(N);
  const type = x.dtype === 'int32' ? 'i32' : 'f32';
  launch(
    scanKernel({ op: kind, type, exclusive, reverse, mode }),
    [x],
    [out],
    { lines: O * I, N, I },
    scanGrid(mode, O * I),
  );
  return out;
}

const cumsumFloat = defineOp('cumsum', {
  forward: (_ctx, x: Tensor, axis: number) => scanRaw('cumsum', x, axis, 'sum', false, false),
  // d/dx_k of sum_j g_j * y_j with y_j = sum_{i <= j} x_i is the sum of g from k to the end.
  backward: ({ args: [, axis] }, g) => [scanRaw('cumsum.backward', g, axis, 'sum', false, true)],
});

/**
 * Cumulative sum along `axis` (torch.cumsum). NaN and infinities propagate to every later element (inf + -inf
 * is NaN), as in PyTorch; int32 stays int32 (PyTorch gives int64) and wraps. Float sums accumulate in float32
 * (PyTorch's CPU kernel uses float64), chunked on long rows so the error grows with the chunk, not the row.
 */
export const cumsum = (x: Tensor, axis: number): Tensor =>
  x.dtype === 'int32' ? scanRaw('cumsum', x, axis, 'sum', false, false) : cumsumFloat(x, axis);

const prodFloat = defineOp('prod', {
  forward: (_ctx, x: Tensor, axes?: Axes, keepdim: boolean = false) => serialReduce('prod', 'prod', x, axes, keepdim),
  // The gradient of each element is the product of the others: exclusive products from the left times
  // exclusive products from the right, exact with zeros (PyTorch's prod_safe_zeros_backward).
  backward: ({ args: [x, axes] }, g) => {
    const list = normalizeAxes('prod', axes, x.rank);
    if (list.length === 0) return [g.alias(x.shape)];
    const kept = x.shape.map((_, i) => i).filter((i) => !list.includes(i));
    const perm = [...kept, ...list];
    const keptShape = kept.map((i) => x.shape[i]!);
    const R = sizeOf(list.map((i) => x.shape[i]!));
    const rows = reshape(permute(x, perm), [...keptShape, R]);
    const left = scanRaw('prod.backward', rows, -1, 'prod', true, false);
    const right = scanRaw('prod.backward', rows, -1, 'prod', true, true);
    const gx = map('prod.backward', 'a * b * c', [left, right, reshape(g, [...keptShape, 1])]);
    const inverse = new Array<number>(x.rank);
    perm.forEach((d, i) => (inverse[d] = i));
    return [
      permute(
        reshape(
          gx,
          perm.map((d) => x.shape[d]!),
        ),
        inverse,
      ),
    ];
  },
});

/**
 * Product over axes (all by default; torch.prod, generalised to several axes like sum). An empty product is 1.
 * int32 stays int32 (PyTorch gives int64) and wraps. Differentiable for float32, zeros included.
 */
export const prod = (x: Tensor, axes?: Axes, keepdim = false): Tensor =>
  x.dtype === 'int32' ? serialReduce('prod', 'prod', x, axes, keepdim) : prodFloat(x, axes, keepdim);
