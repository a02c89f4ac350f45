import { castKernel, copyGrid, elementwiseGrid, elementwiseKernel } from '@leffa-webgpu/kernels-wgsl';
import type { DType, Tensor } from '../tensor/tensor.js';
import { emptyTensor, launch } from './launch.js';

/** A copy of `x` converted to `dtype` by one kernel, never recorded (the differentiable cast wraps it). */
export function castCopy(x: Tensor, dtype: DType): Tensor {
  const out = emptyTensor(x.shape, dtype, 'cast');
  if (out.size === 0) return out;
  if (x.dtype === 'int32' || dtype === 'int32') {
    launch(castKernel(dtype === 'int32' ? 'int32' : 'float32'), [x], [out], { n: out.size }, copyGrid(out.size));
  } else {
    // Between float dtypes the identity kernel converts on load and store (rounding to nearest even).
    launch(
      elementwiseKernel({ expr: 'a', arity: 1, rank: 0 }),
      [x],
      [out],
      { n: out.size, alpha: 0, beta: 0 },
      elementwiseGrid(out.size),
    );
  }
  return out;
}
