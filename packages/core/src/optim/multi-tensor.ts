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

/**
 * Element counts (in vec4s for a vec4 kernel) and first workgroups of the tensors of one multi-tensor dispatch,
 * and its workgroup total.
 */
export function multiLayout(tensors: readonly Tensor[], groupsOf: (n: number) => number, vec4 = false) {
  const n: number[] = [];
  const first: number[] = [];
  let groups = 0;
  for (const t of tensors) {
    const items = vec4 ? t.size / 4 : t.size;
    n.push(items);
    first.push(groups);
    groups += groupsOf(items);
  }
  return { n, first, groups };
}

/**
 * `items` split into those a vec4 kernel can update (every tensor `tensorsOf` gives for the item is float32 with a size
 * divisible by 4) and the rest, each part in its original order; empty parts are left out.
 */
export function splitByVec4<T>(items: readonly T[], tensorsOf: (item: T) => readonly Tensor[]) {
  const fits = (item: T) => tensorsOf(item).every((t) => t.dtype === 'float32' && t.size % 4 === 0);
  return [true, false]
    .map((vec4) => ({ vec4, items: items.filter((item) => fits(item) === vec4) }))
    .filter((part) => part.items.length > 0);
}

/**
 * How many tensors one multi-tensor dispatch covers: as many as the stage binds, `buffersPerTensor` each besides
 * `otherBuffers` shared ones, and at most MULTI_TENSORS (the size of the kernels' uniform arrays).
 */
export function tensorsPerDispatch(buffersPerTensor: number, otherBuffers = 0): number {
  const limit = activeDevice().gpu.limits.maxStorageBuffersPerShaderStage;
  return Math.max(1, Math.min(MULTI_TENSORS, Math.floor((limit - otherBuffers) / buffersPerTensor)));
}
