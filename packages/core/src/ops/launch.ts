import type { Grid, Kernel } from '@leffa-webgpu/kernels-wgsl';
import { type UniformValues, activeDevice } from '../device/device.js';
import { assertShape, formatShape } from '../tensor/shape.js';
import { Storage } from '../tensor/storage.js';
import { BYTES_PER_ELEMENT, type DType, Tensor, checkDType } from '../tensor/tensor.js';

/** A new tensor with uninitialised contents (every op writes all of its output). */
export function emptyTensor(shape: readonly number[], dtype: DType = 'float32', op = 'empty'): Tensor {
  assertShape(op, shape);
  checkDType(op, dtype);
  const device = activeDevice();
  let n = 1;
  for (const d of shape) n *= d;
  const bytes = n * BYTES_PER_ELEMENT[dtype];
  const shapeText = formatShape(shape);
  device.checkAllocation(op, shapeText, bytes);
  return new Tensor(new Storage(device, device.pool.acquire(bytes, `${op}: a tensor of shape ${shapeText}`), bytes), [...shape], dtype);
}

/** Records a kernel dispatch reading `inputs` and writing `outputs` (bindings in that order). */
export function launch(
  kernel: Kernel,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  uniforms: UniformValues,
  grid: Grid,
): void {
  const bind = (t: Tensor) => ({ entry: t.storage.entry, bytes: t.byteLength });
  activeDevice().dispatch(kernel, [...inputs.map(bind), ...outputs.map(bind)], uniforms, grid);
}
