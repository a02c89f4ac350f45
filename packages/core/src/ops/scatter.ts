import {
  MAX_RANK,
  gatherAxisKernel,
  indexingGrid,
  scatterAxisGrid,
  scatterAxisKernel,
} from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { contiguousStrides, formatShape, normalizeAxis } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkIndexRange, gather } from './indexing.js';
import { clone } from './norm.js';
import { launch } from '../forward/launch.js';
import { pad, slice } from './shape.js';

/*
 * torch.scatter / scatter_add along an axis: out = x, then for every position c of `index`,
 * out[c with c_axis replaced by index[c]] = src[c] (or += for scatterAdd). As in PyTorch, index has x's rank,
 * no larger size than src anywhere nor than x outside `axis`; indices outside [0, x.shape[axis]) make the next
 * readback fail naming the op (checked on the device).
 */

function validate(op: string, x: Tensor, axis: number, index: Tensor, src: Tensor | number): number {
  if (index.dtype !== 'int32')
    throw new Error(`${op}: index must be int32, got ${index.dtype} ${formatShape(index.shape)}`);
  const a = normalizeAxis(op, axis, Math.max(x.rank, 1));
  const bad =
    index.rank !== x.rank ||
    index.shape.some((d, i) => i !== a && d > x.shape[i]!) ||
    (typeof src !== 'number' && (src.rank !== x.rank || index.shape.some((d, i) => d > src.shape[i]!)));
  if (bad) {
    const srcText = typeof src === 'number' ? '' : `, src ${formatShape(src.shape)}`;
    throw new Error(
      `${op}: index ${formatShape(index.shape)} must have the rank of input ${formatShape(x.shape)}${srcText}, be no larger than src in any dim and than the input outside axis ${a}`,
    );
  }
  if (typeof src !== 'number' && src.dtype !== x.dtype)
    throw new Error(`${op}: src is ${src.dtype}, input is ${x.dtype}; they must match`);
  if (x.rank > MAX_RANK) throw new Error(`${op}: rank ${x.rank} exceeds ${MAX_RANK}`);
  return a;
}

/** src cut to the index's shape (PyTorch reads src only where index has entries). */
const srcView = (src: Tensor, index: Tensor) =>
  index.shape.every((d, i) => d === src.shape[i])
    ? src
    : slice(
        src,
        index.shape.map((d) => ({ end: d })),
      );

/** The gradient of src: g gathered at the index positions, zero-padded to src's shape. */
function srcGrad(g: Tensor, a: number, index: Tensor, src: Tensor): Tensor {
  const gs = gather(g, a, index);
  if (index.shape.every((d, i) => d === src.shape[i])) return gs;
  const pads: number[] = [];
  for (let d = src.rank - 1; d >= 0; d--) pads.push(0, src.shape[d]! - index.shape[d]!);
  return pad(gs, pads);
}

function scatterRaw(op: string, x: Tensor, a: number, index: Tensor, src: Tensor | number): Tensor {
  const out = clone(x);
  if (index.size === 0) return out;
  checkIndexRange(op, index, x.shape[a] ?? 1);
  const fromValue = typeof src === 'number';
  const bits = !fromValue ? 0 : x.dtype === 'int32' ? src | 0 : new Uint32Array(new Float32Array([src]).buffer)[0]!;
  const rank = Math.max(index.rank, 1);
  launch(
    scatterAxisKernel(rank, fromValue),
    fromValue ? [index] : [srcView(src, index), index],
    [out],
    {
      n: index.size,
      axis: a,
      axisSize: x.shape[a] ?? 1,
      value: bits >>> 0,
      ishape: index.rank === 0 ? [1] : index.shape,
      ostride: x.rank === 0 ? [0] : contiguousStrides(x.shape),
    },
    scatterAxisGrid(index.size),
  );
  return out;
}

const scatterOp = defineOp('scatter', {
  forward: (ctx, x: Tensor, axis: number, index: Tensor, src: Tensor | number) => {
    const a = validate('scatter', x, axis, index, src);
    ctx.save(a);
    return scatterRaw('scatter', x, a, index, src);
  },
  // Overwritten positions get no gradient; src gets the gradient of the positions it wrote (PyTorch 1.13).
  backward: ({ args: [, , index, src], saved: a, needsGrad }, g) => {
    const gx = needsGrad[0] ? scatterRaw('scatter.backward', g, a, index, 0) : null;
    return typeof src === 'number' ? [gx, null] : [gx, null, needsGrad[2] ? srcGrad(g, a, index, src) : null];
  },
});

/**
 * torch.scatter(x, axis, index, src): a copy of x with src[c] written at index[c] along `axis` (src may be a
 * number). With duplicate indices one of the values wins, unspecified which (as in PyTorch). Differentiable in
 * x and src (float32); int32 tensors are scattered too.
 */
export const scatter = (x: Tensor, axis: number, index: Tensor, src: Tensor | number): Tensor =>
  scatterOp(x, axis, index, src);

/**
 * torch.scatter_add(x, axis, index, src): a copy of x with src[c] added at index[c] along `axis`; duplicate
 * indices accumulate (in no fixed order: float atomics). float32 only. Differentiable in x and src.
 */
export const scatterAdd = defineOp('scatter_add', {
  forward: (ctx, x: Tensor, axis: number, index: Tensor, src: Tensor) => {
    const op = 'scatterAdd';
    if (x.dtype !== 'float32')
      throw new Error(`${op}: expected float32 tensors, got ${x.dtype} ${formatShape(x.shape)}`);
    const a = validate(op, x, axis, index, src);
    ctx.save(a);
    const out = clone(x);
    if (index.size === 0) return out;
    checkIndexRange(op, index, x.shape[a] ?? 1);
    launch(
      gatherAxisKernel(Math.max(index.rank, 1), true),
      [srcView(src, index), index],
      [out],
      {
        n: index.size,
        axis: a,
        axisSize: x.shape[a] ?? 1,
        ishape: index.rank === 0 ? [1] : index.shape,
        xstride: x.rank === 0 ? [0] : contiguousStrides(x.shape),
      },
      indexingGrid(index.size),
    );
    return out;
  },
  backward: ({ args: [, , index, src], saved: a, needsGrad }, g) => [
    needsGrad[0] ? g.alias() : null,
    null,
    needsGrad[2] ? srcGrad(g, a, index, src) : null,
  ],
});
