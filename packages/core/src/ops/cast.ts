import { castKernel, copyGrid } from '@leffa-webgpu/kernels-wgsl';
import { type DType, type Tensor, checkDType } from '../tensor/tensor.js';
import { emptyTensor, launch } from './launch.js';

/** A copy converted to `dtype` (float to int truncates toward zero). Not differentiable. */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkDType('cast', dtype);
  if (x.dtype === dtype) return x.alias();
  const out = emptyTensor(x.shape, dtype, 'cast');
  if (out.size > 0) launch(castKernel(dtype), [x], [out], { n: out.size }, copyGrid(out.size));
  return out;
}
