import { GATHER_RUN, MAX_RANK, copyGrid, gatherKernel, scatterKernel } from '@leffa-webgpu/kernels-wgsl';
import { activeDevice } from '../device/device.js';
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

/**
 * The copy in vec4 units when its innermost (coalesced) run is a multiple of 4 values, unit-strided on the
 * strided side, and every other stride and the offset are multiples of 4: then each group of 4 values moves
 * as one vec4 word. Returns the shape, strides and offset in those units, or null.
 */
function inVec4Units(shape: number[], strides: number[], offset: number) {
  const last = shape.length - 1;
  if (last < 0 || shape[last]! % 4 !== 0 || strides[last] !== 1 || offset % 4 !== 0) return null;
  if (strides.some((s, d) => d < last && s % 4 !== 0)) return null;
  return {
    shape: shape.map((s, d) => (d === last ? s / 4 : s)),
    strides: strides.map((s, d) => (d === last ? 1 : s / 4)),
    offset: offset / 4,
  };
}

/**
 * Runs of GATHER_RUN values per invocation for a scalar gather of `size` values whose innermost rows are at least
 * that long (CPU adapters, where a copy costs its per-invocation work: gatherKernel): the runs per row and in all
 * (the launch's n), or null.
 */
export function gatherRuns(shape: readonly number[], size: number): { runsW: number; n: number } | null {
  const W = shape[shape.length - 1] ?? 0;
  if (shape.length < 2 || W < GATHER_RUN || !activeDevice().report.isCpu) return null;
  const runsW = Math.ceil(W / GATHER_RUN);
  return { runsW, n: (size / W) * runsW };
}

/** out[c] = x[offset + sum c_d * stride_d], coalescing dims so the kernel's index math stays short. */
export function gatherStrided(op: string, x: Tensor, outShape: number[], strides: number[], offset = 0): Tensor {
  const out = emptyTensor(outShape, x.dtype, op);
  if (out.size === 0) return out;
  const c = coalesceDims(outShape, [strides, contiguousStrides(outShape)]);
  const rank = Math.max(1, c.shape.length);
  checkRank(op, rank);
  const shape = c.shape.length ? c.shape : [1];
  const stride = c.strides[0]!.length ? c.strides[0]! : [0];
  const v = inVec4Units(shape, stride, offset);
  const runs = v ? null : gatherRuns(shape, out.size);
  const n = v ? out.size / 4 : (runs?.n ?? out.size);
  launch(
    gatherKernel(rank, false, v !== null, runs !== null),
    [x],
    [out],
    {
      n,
      offset: v?.offset ?? offset,
      fill: 0,
      ...(runs ? { runsW: runs.runsW } : {}),
      shape: v?.shape ?? shape,
      stride: v?.strides ?? stride,
      lo: [],
      srcShape: [],
    },
    copyGrid(n),
  );
  return out;
}

/** Writes contiguous `src` into `out` at offset + sum c_d * stride_d (one slab of concat, or a slice's grad). */
export function scatterStrided(src: Tensor, out: Tensor, strides: number[], offset: number): void {
  if (src.size === 0) return;
  const c = coalesceDims(src.shape, [contiguousStrides(src.shape), strides]);
  const rank = Math.max(1, c.shape.length);
  const shape = c.shape.length ? c.shape : [1];
  const stride = c.strides[1]!.length ? c.strides[1]! : [0];
  const v = inVec4Units(shape, stride, offset);
  const n = v ? src.size / 4 : src.size;
  launch(
    scatterKernel(rank, v !== null),
    [src],
    [out],
    { n, offset: v?.offset ?? offset, shape: v?.shape ?? shape, stride: v?.strides ?? stride },
    copyGrid(n),
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
