import { MAX_RANK, copyGrid, gatherKernel, scatterKernel } from '@leffa-webgpu/kernels-wgsl';
import { coalesceDims, contiguousStrides, formatShape, normalizeAxis } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { emptyTensor, launch } from './launch.js';

/*
 * Layout copies. Tensors are contiguous, so every layout change (permute, expand, slice, pad, flip, concat)
 * copies through one strided gather/scatter kernel.
 */

export function checkRank(op: string, rank: number): void {
  if (rank > MAX_RANK) throw new Error(`${op}: rank ${rank} exceeds the supported maximum of ${MAX_RANK}`);
}

/** out[c] = x[offset + sum c_d * stride_d], coalescing dims so the kernel's index math stays short. */
export function gatherStrided(op: string, x: Tensor, outShape: number[], strides: number[], offset = 0): Tensor {
  const out = emptyTensor(outShape, x.dtype, op);
  if (out.size === 0) return out;
  const c = coalesceDims(outShape, [strides, contiguousStrides(outShape)]);
  const rank = Math.max(1, c.shape.length);
  checkRank(op, rank);
  launch(
    gatherKernel(rank, false),
    [x],
    [out],
    {
      n: out.size,
      offset,
      fill: 0,
      shape: c.shape.length ? c.shape : [1],
      stride: c.strides[0]!.length ? c.strides[0]! : [0],
      lo: [],
      srcShape: [],
    },
    copyGrid(out.size),
  );
  return out;
}

/** Writes contiguous `src` into `out` at offset + sum c_d * stride_d (one slab of concat, or a slice's grad). */
export function scatterStrided(src: Tensor, out: Tensor, strides: number[], offset: number): void {
  if (src.size === 0) return;
  const c = coalesceDims(src.shape, [contiguousStrides(src.shape), strides]);
  const rank = Math.max(1, c.shape.length);
  launch(
    scatterKernel(rank),
    [src],
    [out],
    { n: src.size, offset, shape: c.shape.length ? c.shape : [1], stride: c.strides[1]!.length ? c.strides[1]! : [0] },
    copyGrid(src.size),
  );
}

/** x with its axes reordered to `dims` (negative axes allowed), as a contiguous copy; errors name `op`. */
export function permuteCopy(op: string, x: Tensor, dims: readonly number[]): Tensor {
  const d = dims.map((a) => normalizeAxis(op, a, x.rank));
  if (d.length !== x.rank || new Set(d).size !== d.length) {
    throw new Error(
      `${op}: dims [${dims.join(', ')}] are not a permutation of ${x.rank} axes (input ${formatShape(x.shape)})`,
    );
  }
  const strides = contiguousStrides(x.shape);
  return gatherStrided(
    op,
    x,
    d.map((a) => x.shape[a]!),
    d.map((a) => strides[a]!),
  );
}
