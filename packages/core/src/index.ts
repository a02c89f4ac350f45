export { Device, getDevice, activeDevice, type DeviceOptions, type UniformValues } from './device/device.js';
export { type AdapterReport, SETUP_HINT } from './device/adapter.js';
export { type MemoryStats, sizeClass } from './device/buffer-pool.js';
export { waitQuietly } from './device/quiet-wait.js';
export { Tensor, type DType, DTYPES, checkDType, isFloatDType, BYTES_PER_ELEMENT } from './tensor/tensor.js';
export { floatToHalf, halfToFloat, bfloat16ToFloat } from './tensor/half.js';
export { tidy, keep, dispose } from './tensor/scope.js';
export { HostStorage, type HostValues } from './tensor/host-storage.js';
export { hostTensor, hostValuesOf, uploadHostTensor, convertHostValues } from './forward/host.js';
export { setRowLanes } from './forward/row-lanes.js';
export * from './tensor/shape.js';
export { defineOp, opRegistry, type ForwardContext, type OpDefinition } from './autograd/op.js';
export type { BackwardContext, GradNode } from './autograd/node.js';
export { backward, type BackwardOptions } from './autograd/engine.js';
export { noGrad, isGradEnabled, setGradEnabled } from './autograd/grad-mode.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult } from './autograd/gradcheck.js';
export * from './ops/index.js';

import { getDevice } from './device/device.js';
import type { MemoryStats } from './device/buffer-pool.js';
import { activeDevice } from './device/device.js';

/** Initialises the default device (same as `getDevice()`); call once before creating tensors. */
export const init = getDevice;

/** Waits while too much GPU work is queued; call once per iteration of long loops (see Device.throttle). */
export const throttle = (maxInFlight?: number): Promise<void> => activeDevice().throttle(maxInFlight);

/** Live and pooled GPU memory of the active device. */
export const memoryStats = (): MemoryStats => activeDevice().memoryStats();

/** Runs `fn` without executing anything on the device, accounting its memory as a real run would (Device.dryRun). */
export const dryRun = <R>(fn: () => R | Promise<R>): Promise<R> => activeDevice().dryRun(fn);
export * from './io/safetensors.js';
export { readPth, loadPth, readPkl, loadPkl, PTH_MAX_EXPANDED_BYTES, type PthOptions } from './io/pth.js';
export { crc32 } from './io/crc32.js';
export * as nn from './nn/index.js';
export { Module, type LoadReport, type LoadOptions } from './nn/module.js';
export * as optim from './optim/index.js';
export { Optimizer, SGD, Adam, AdamW, EMA, clipGradNorm } from './optim/index.js';
export * from './io/checkpoint.js';
