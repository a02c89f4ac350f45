import { normalizeAxis, formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { gather } from './indexing.js';
import { narrow } from './shape.js';
import { argsort } from './sort.js';

/**
 * The k largest (or smallest) values along `axis` and their int32 indices (torch.topk), in order: largest
 * first, or smallest first with `largest: false`. NaN counts as larger than everything, as in PyTorch (first
 * among the largest, last among the smallest). Built on the bitonic argsort (stable, so tied values come in
 * index order; PyTorch leaves their order unspecified); the values are a gather, so gradients reach x.
 */
export function topk(x: Tensor, k: number, axis = -1, largest = true): { values: Tensor; indices: Tensor } {
  if (x.dtype !== 'float32') throw new Error(`topk: expected a float32 tensor, got ${x.dtype} ${formatShape(x.shape)}`);
  const a = normalizeAxis('topk', axis, Math.max(x.rank, 1));
  const n = x.rank === 0 ? 1 : x.shape[a]!;
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new Error(`topk: k = ${k} is out of range for axis ${axis} of size ${n} (input ${formatShape(x.shape)})`);
  }
  const order = argsort(x, a, largest);
  const indices = x.rank === 0 ? order : narrow(order, a, 0, k);
  if (indices !== order) order.dispose();
  return { values: gather(x, x.rank === 0 ? 0 : a, indices), indices };
}
