import {
  MAX_RANK,
  gatherAxisKernel,
  indexRangeCheckKernel,
  indexSelectKernel,
  indexingGrid,
  oneHotKernel,
} from '@leffa-webgpu/kernels-wgsl';
import { activeDevice } from '../device/device.js';
import { Storage } from '../tensor/storage.js';
import { defineOp } from '../autograd/op.js';
import { contiguousStrides, formatShape, normalizeAxis, sizeOf } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { zeros } from '../forward/creation.js';
import { emptyTensor, floatResult, launch } from '../forward/launch.js';
import { reshape } from './shape.js';

/*
 * Integer indexing with int32 indices. Indices outside [0, size) produce NaN (PyTorch raises, which a GPU op
 * cannot do without a readback) so that a bad label never passes silently. Backward scatter-adds into zeros.
 */

function checkIndex(op: string, index: Tensor): void {
  if (index.dtype !== 'int32')
    throw new Error(`${op}: index must be int32, got ${index.dtype} ${formatShape(index.shape)}`);
}

/**
 * Validates int32 indices on the device, without a readback: an index outside [0, bound) (other than
 * `ignoreIndex`) makes the next readback fail with a RangeError naming `op`, the offending value and the bound,
 * as PyTorch raises. `what` names the indices in the message.
 */
export function checkIndexRange(op: string, index: Tensor, bound: number, what = 'index', ignoreIndex?: number): void {
  checkIndex(op, index);
  if (index.size === 0) return;
  const device = activeDevice();
  const ignore = ignoreIndex === undefined ? '' : ` and not the ignore index ${ignoreIndex}`;
  const { flag, id } = device.indexCheckFlag(
    `${op}: ${what} {value} is out of range (expected 0 <= ${what} < ${bound}${ignore}; ${what} shape ${formatShape(index.shape)})`,
  );
  // The flag buffer is the device's: this tensor only binds it, and the extra reference keeps its disposal (by a
  // scope or the garbage collector) from returning the buffer to the pool.
  const flagTensor = new Tensor(new Storage(device, flag, 8).retain(), [2], 'int32');
  launch(
    indexRangeCheckKernel(),
    [index],
    [flagTensor],
    {
      n: index.size,
      lo: 0,
      hi: bound,
      ignore: ignoreIndex ?? 0,
      useIgnore: ignoreIndex === undefined ? 0 : 1,
      checkId: id,
    },
    indexingGrid(index.size),
  );
}

function checkFloat(op: string, x: Tensor): void {
  floatResult(op, [x]);
}

function gatherUniforms(x: Tensor, axis: number, index: Tensor) {
  return {
    n: index.size,
    axis,
    axisSize: x.shape[axis] ?? 1,
    ishape: index.rank === 0 ? [1] : index.shape,
    xstride: x.rank === 0 ? [0] : contiguousStrides(x.shape),
  };
}

/**
 * torch.gather: out[c] = x[c with c_axis replaced by index[c]], out shaped like index (whose other dims may
 * not exceed x's). Backward scatter-adds the gradient into x's shape.
 */
export const gather = defineOp('gather', {
  forward: (ctx, x: Tensor, axis: number, index: Tensor) => {
    const op = 'gather';
    checkFloat(op, x);
    checkIndex(op, index);
    const a = normalizeAxis(op, axis, Math.max(x.rank, 1));
    ctx.save(a);
    if (index.rank !== x.rank || index.shape.some((d, i) => i !== a && d > x.shape[i]!)) {
      throw new Error(
        `${op}: index ${formatShape(index.shape)} must have the rank of input ${formatShape(x.shape)} and no larger size outside axis ${a}`,
      );
    }
    if (index.rank > MAX_RANK) throw new Error(`${op}: rank ${index.rank} exceeds ${MAX_RANK}`);
    const out = emptyTensor(index.shape, x.dtype, op);
    if (out.size === 0) return out;
    checkIndexRange(op, index, x.shape[a] ?? 1);
    launch(
      gatherAxisKernel(Math.max(index.rank, 1), false),
      [x, index],
      [out],
      gatherUniforms(x, a, index),
      indexingGrid(out.size),
    );
    return out;
  },
  backward: ({ args: [x, , index], saved: a }, g) => {
    const gx = zeros(x.shape);
    if (index.size > 0) {
      launch(
        gatherAxisKernel(Math.max(index.rank, 1), true),
        [g, index],
        [gx],
        gatherUniforms(x, a, index),
        indexingGrid(index.size),
      );
    }
    return [gx, null];
  },
});

/** The [O, A, I] view of x around `axis` that index_select works on. */
function selectView(x: Tensor, a: number) {
  return { O: sizeOf(x.shape.slice(0, a)), A: x.shape[a]!, I: sizeOf(x.shape.slice(a + 1)) };
}

/** torch.index_select: the entries index[k] (int32, 1-D) of x along `axis`. Backward index-adds into x. */
export const indexSelect = defineOp('index_select', {
  forward: (ctx, x: Tensor, axis: number, index: Tensor) => {
    const op = 'indexSelect';
    checkFloat(op, x);
    checkIndex(op, index);
    if (index.rank > 1) throw new Error(`${op}: index must be 1-D, got ${formatShape(index.shape)}`);
    if (x.rank === 0) throw new Error(`${op}: input must have at least one dimension`);
    const a = normalizeAxis(op, axis, x.rank);
    ctx.save(a);
    const K = index.size;
    const { A, I } = selectView(x, a);
    const out = emptyTensor([...x.shape.slice(0, a), K, ...x.shape.slice(a + 1)], x.dtype, op);
    if (out.size === 0) return out;
    checkIndexRange(op, index, A);
    launch(indexSelectKernel(false), [x, index], [out], { n: out.size, A, K, I }, indexingGrid(out.size));
    return out;
  },
  backward: ({ args: [x, , index], saved: a }, g) => {
    const gx = zeros(x.shape);
    const { A, I } = selectView(x, a);
    if (g.size > 0)
      launch(indexSelectKernel(true), [g, index], [gx], { n: g.size, A, K: index.size, I }, indexingGrid(g.size));
    return [gx, null];
  },
});

/** Rows of `weight` [V, D] picked by int32 `indices` of any shape: [...indices.shape, D]. */
export function embedding(indices: Tensor, weight: Tensor): Tensor {
  checkIndex('embedding', indices);
  if (weight.rank !== 2)
    throw new Error(`embedding: weight must be [numEmbeddings, dim], got ${formatShape(weight.shape)}`);
  checkIndexRange('embedding', indices, weight.shape[0]!);
  const rows = indexSelect(weight, 0, reshape(indices, [indices.size]));
  return reshape(rows, [...indices.shape, weight.shape[1]!]);
}

/**
 * One-hot float32 encoding of int32 labels: [...labels.shape, numClasses] (PyTorch returns int64; float is
 * what losses consume). A label outside [0, numClasses) makes its row NaN.
 */
export function oneHot(labels: Tensor, numClasses: number): Tensor {
  checkIndex('oneHot', labels);
  if (!Number.isInteger(numClasses) || numClasses <= 0)
    throw new Error(`oneHot: numClasses must be a positive integer, got ${numClasses}`);
  const out = emptyTensor([...labels.shape, numClasses], 'float32', 'oneHot');
  if (out.size > 0) launch(oneHotKernel(), [labels], [out], { n: out.size, K: numClasses }, indexingGrid(out.size));
  return out;
}
