import { castKernel, copyGrid, elementwiseGrid, elementwiseKernel } from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { type DType, type Tensor, checkDType, isFloatDType } from '../tensor/tensor.js';
import { emptyTensor, launch } from './launch.js';

const castOp: (x: Tensor, dtype: DType) => Tensor = defineOp('cast', {
  forward: (_ctx, x: Tensor, dtype: DType) => {
    const out = emptyTensor(x.shape, dtype, 'cast');
    if (out.size === 0) return out;
    if (x.dtype === 'int32' || dtype === 'int32') {
      launch(castKernel(dtype === 'int32' ? 'int32' : 'float32'), [x], [out], { n: out.size }, copyGrid(out.size));
    } else {
      // Between float dtypes the identity kernel converts on load and store (rounding to nearest even).
      launch(elementwiseKernel({ expr: 'a', arity: 1, rank: 0 }), [x], [out], { n: out.size, alpha: 0, beta: 0 }, elementwiseGrid(out.size));
    }
    return out;
  },
  // Between float dtypes the gradient is cast back; int32 outputs carry none.
  backward: ({ args: [x] }, g): (Tensor | null)[] => [isFloatDType(x.dtype) ? castOp(g, x.dtype) : null],
});

/**
 * A copy converted to `dtype` (float to int truncates toward zero, float32 to float16 rounds to nearest even
 * and overflows to infinity). Differentiable between float dtypes.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkDType('cast', dtype);
  // Same dtype: an alias (PyTorch returns the tensor itself), a recorded copy where gradients flow.
  if (x.dtype === dtype && !x.requiresGrad) return x.alias();
  return castOp(x, dtype);
}

/** `cast(x, 'float16')`, PyTorch's `x.half()`. */
export const half = (x: Tensor): Tensor => cast(x, 'float16');
