import type { RowLanes } from '@leffa-webgpu/kernels-wgsl';
import { activeDevice } from '../device/device.js';

let forcedRowLanes: RowLanes | null = null;

/**
 * Overrides the adapter-based width (8 or 64 invocations) of the workgroups that own a row in reductions and
 * normalisations, for every later launch (null restores it); for tests and benchmarks.
 */
export function setRowLanes(lanes: RowLanes | null): void {
  if (lanes !== null && lanes !== 8 && lanes !== 64)
    throw new Error(`setRowLanes: expected 8, 64 or null, got ${String(lanes)}`);
  forcedRowLanes = lanes;
}

/** Invocations of a workgroup that owns a row: one SIMD vector on CPU adapters (see RowLanes), else 64. */
export const rowLanes = (): RowLanes => forcedRowLanes ?? (activeDevice().report.isCpu ? 8 : 64);
