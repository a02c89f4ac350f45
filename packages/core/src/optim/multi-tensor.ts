// Launch layout of the multi-tensor optimizer kernels (kernels-wgsl optim.ts): several tensors per dispatch,
// tensor k owning the workgroups from first[k] on.
import { MULTI_TENSORS } from '@leffa-webgpu/kernels-wgsl';
import { activeDevice } from '../device/device.js';
import type { Tensor } from '../tensor/tensor.js';

/** `items` in consecutive runs of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Element counts and first workgroups of the tensors of one multi-tensor dispatch, and its workgroup total. */
export function multiLayout(tensors: readonly Tensor[], groupsOf: (n: number) => number) {
  const n: number[] = [];
  const first: number[] = [];
  let groups = 0;
  for (const t of tensors) {
    n.push(t.size);
    first.push(groups);
    groups += groupsOf(t.size);
  }
  return { n, first, groups };
}

/**
 * How many tensors one multi-tensor dispatch covers: as many as the stage binds, `buffersPerTensor` each besides
 * `otherBuffers` shared ones, and at most MULTI_TENSORS (the size of the kernels' uniform arrays).
 */
export function tensorsPerDispatch(buffersPerTensor: number, otherBuffers = 0): number {
  const limit = activeDevice().gpu.limits.maxStorageBuffersPerShaderStage;
  return Math.max(1, Math.min(MULTI_TENSORS, Math.floor((limit - otherBuffers) / buffersPerTensor)));
}
