import {
  bitonicSchedule,
  nextPowerOfTwo,
  sortGrid,
  sortIndicesKernel,
  sortKeysKernel,
} from '@leffa-webgpu/kernels-wgsl';
import { activeDevice } from '../device/device.js';
import { tidy } from '../tensor/scope.js';
import { normalizeAxis } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { gather } from './indexing.js';
import { emptyTensor, launch } from '../forward/launch.js';
import { transpose } from './shape.js';

export type SortSchedule = 'workgroup' | 'fused';

let forcedSchedule: SortSchedule | null = null;

/** Overrides the adapter-based bitonic schedule for every later sort (null restores it); for tests and benchmarks. */
export function setSortSchedule(schedule: SortSchedule | null): void {
  forcedSchedule = schedule;
}

/**
 * The bitonic schedule for this adapter: GPUs sort tiles in workgroup memory; CPU implementations (lavapipe),
 * where workgroup memory is ordinary memory and barriers are costly, run three stages per pass in registers.
 */
export function sortScheduleFor(isCpu: boolean): SortSchedule {
  return forcedSchedule ?? (isCpu ? 'fused' : 'workgroup');
}

/**
 * Sorts, in place, `segments` segments of length L (a power of two) of (key, index) pairs held in an int32
 * tensor of 2 * segments * L words: key descending, ties by index ascending (stable).
 */
export function sortPairsInPlace(pairs: Tensor, segments: number, L: number): void {
  const schedule = sortScheduleFor(activeDevice().report.isCpu);
  for (const d of bitonicSchedule(segments, L, schedule)) launch(d.kernel, [], [pairs], d.uniforms, d.grid);
}

/**
 * Indices (int32) that sort x along `axis`, ascending unless `descending`; stable (equal values keep their
 * order), NaN sorts as the largest value, as PyTorch. A bitonic network over each row padded to a power of
 * two: about log2(n)^2 / 2 compare-exchange stages, most of them inside workgroup memory.
 */
export function argsort(x: Tensor, axis = -1, descending = false): Tensor {
  if (x.dtype !== 'float32') throw new Error(`argsort: expected float32, got ${x.dtype}`);
  const a = normalizeAxis('argsort', axis, Math.max(x.rank, 1));
  if (x.rank > 0 && a !== x.rank - 1) return tidy(() => transpose(argsort(transpose(x, a, -1), -1, descending), a, -1));
  const n = x.rank === 0 ? 1 : x.shape[x.rank - 1]!;
  const rows = n === 0 ? 0 : x.size / n;
  const indices = emptyTensor(x.shape, 'int32', 'argsort');
  if (x.size === 0) return indices;
  const L = nextPowerOfTwo(n);
  const pairs = emptyTensor([rows, L, 2], 'int32', 'argsort');
  launch(sortKeysKernel(descending), [x], [pairs], { n, L, total: rows * L }, sortGrid(rows * L));
  sortPairsInPlace(pairs, rows, L);
  launch(sortIndicesKernel(), [pairs], [indices], { n, L, total: x.size }, sortGrid(x.size));
  pairs.dispose();
  return indices;
}

/**
 * Sorted values and their indices along `axis` (see argsort). The values are a gather of x, so gradients
 * flow back to x through the permutation.
 */
export function sort(x: Tensor, axis = -1, descending = false): { values: Tensor; indices: Tensor } {
  const indices = argsort(x, axis, descending);
  return { values: gather(x, x.rank === 0 ? 0 : axis, indices), indices };
}
