import { copyGrid, gatherKernel } from '@leffa-webgpu/kernels-wgsl';
import { emptyTensor, launch } from '../forward/launch.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/*
 * Value copies between buffers. Optimizer state, EMA shadows and parameters must never share storage
 * (they are updated in place), so moving values between them always copies.
 */

/** Overwrites `dst`'s buffer with `src`'s values (same shape); `dst` keeps its own storage. */
export function copyInto(op: string, dst: Tensor, src: Tensor): void {
  if (dst.shape.join() !== src.shape.join() || dst.dtype !== src.dtype) {
    throw new Error(
      `${op}: cannot copy ${formatShape(src.shape)} ${src.dtype} into ${formatShape(dst.shape)} ${dst.dtype}`,
    );
  }
  if (dst.storage === src.storage || dst.size === 0) return;
  // A 1-D gather with unit stride is a plain copy of 32-bit words.
  launch(
    gatherKernel(1, false),
    [src],
    [dst],
    { n: src.size, offset: 0, fill: 0, shape: [src.size], stride: [1], lo: [], srcShape: [] },
    copyGrid(src.size),
  );
}

/** A new tensor with its own storage holding `src`'s values. */
export function cloneTensor(op: string, src: Tensor): Tensor {
  const out = emptyTensor(src.shape, src.dtype, op);
  copyInto(op, out, src);
  return out;
}
