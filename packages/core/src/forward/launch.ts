import { type Grid, type Kernel, halfStorageKernel } from '@leffa-webgpu/kernels-wgsl';
import { type Device, type UniformValues, activeDevice } from '../device/device.js';
import { assertShape, formatShape } from '../tensor/shape.js';
import { Storage } from '../tensor/storage.js';
import { BYTES_PER_ELEMENT, type DType, Tensor, checkDType, isFloatDType } from '../tensor/tensor.js';

/** Throws naming `op` unless the device can hold float16 tensors (the adapter's shader-f16 feature). */
export function requireHalf(device: Device, op: string): void {
  if (!device.hasF16) {
    throw new Error(
      `${op}: float16 tensors need the adapter's 'shader-f16' feature, which this device lacks; keep the model in float32 ` +
        `(load weights with { dtype: 'float32' }, skip half())`,
    );
  }
}

/** A new tensor with uninitialised contents (every op writes all of its output). */
export function emptyTensor(shape: readonly number[], dtype: DType = 'float32', op = 'empty'): Tensor {
  assertShape(op, shape);
  checkDType(op, dtype);
  const device = activeDevice();
  if (dtype === 'float16') requireHalf(device, op);
  let n = 1;
  for (const d of shape) n *= d;
  const bytes = n * BYTES_PER_ELEMENT[dtype];
  const shapeText = formatShape(shape);
  device.checkAllocation(op, shapeText, bytes);
  return new Tensor(
    new Storage(device, device.pool.acquire(bytes, `${op}: a tensor of shape ${shapeText}`), bytes),
    [...shape],
    dtype,
  );
}

/**
 * The dtype of a float op's result, PyTorch's promotion among float tensors: float16 when every tensor
 * operand is float16, float32 as soon as one is float32 (numbers never promote). Non-float operands are
 * refused naming the op.
 */
export function floatResult(op: string, inputs: readonly Tensor[]): DType {
  let half = inputs.length > 0;
  for (const [i, t] of inputs.entries()) {
    if (!isFloatDType(t.dtype)) throw new Error(`${op}: input ${i} has dtype ${t.dtype}, expected float32 or float16`);
    if (t.dtype !== 'float16') half = false;
  }
  return half ? 'float16' : 'float32';
}

/**
 * Records a kernel dispatch reading `inputs` and writing `outputs` (bindings in that order). float16 tensors
 * bound to a kernel's f32 buffers get the kernel's float16-storage variant (f32 arithmetic, f16 loads and
 * stores), so every float kernel serves both float dtypes and mixed operands.
 */
export function launch(
  kernel: Kernel,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  uniforms: UniformValues,
  grid: Grid,
): void {
  const tensors = [...inputs, ...outputs];
  let halves: string[] | null = null;
  tensors.forEach((t, i) => {
    if (t.dtype === 'float16') (halves ??= []).push(kernel.buffers[i]!.name);
  });
  const device = activeDevice();
  if (halves) requireHalf(device, kernel.key);
  const k = halves ? halfStorageKernel(kernel, halves) : kernel;
  const bind = (t: Tensor) => ({ entry: t.storage.entry, bytes: t.byteLength });
  device.dispatch(k, tensors.map(bind), uniforms, grid);
}
