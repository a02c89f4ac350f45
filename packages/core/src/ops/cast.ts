import { defineOp } from '../autograd/op.js';
import { type DType, type Tensor, checkDType, isFloatDType } from '../tensor/tensor.js';
import { castCopy } from '../forward/cast.js';

const castOp: (x: Tensor, dtype: DType) => Tensor = defineOp('cast', {
  forward: (_ctx, x: Tensor, dtype: DType) => castCopy(x, dtype),
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
