import { defineOp } from '../autograd/op.js';
import { broadcastShapes, formatShape, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { cast } from './cast.js';
import { tensor } from '../forward/creation.js';
import { map } from './elementwise.js';
import { indexSelect } from './indexing.js';
import { typedMap } from './integer.js';
import { reshape } from './shape.js';

/** A float 0/1 view of a mask given as float32 (non-zero is true) or int32. */
const floatMask = (mask: Tensor) => (mask.dtype === 'int32' ? cast(mask, 'float32') : mask);

function checkMaskShape(op: string, x: Tensor, mask: Tensor): void {
  const shape = broadcastShapes(op, x.shape, mask.shape);
  if (shape.length !== x.rank || shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(
      `${op}: mask ${formatShape(mask.shape)} must broadcast to the input's shape ${formatShape(x.shape)}`,
    );
  }
}

const maskedFillFloat = defineOp('masked_fill', {
  forward: (_ctx, x: Tensor, mask: Tensor, value: number) =>
    map('maskedFill', 'select(a, alpha, b != 0.0)', [x, floatMask(mask)], value),
  backward: ({ args: [, mask] }, g) => [
    map('maskedFill.backward', 'select(a, 0.0, b != 0.0)', [g, floatMask(mask)]),
    null,
  ],
});

/**
 * torch.Tensor.masked_fill: `value` where `mask` (float32 non-zero, or int32; broadcast to x's shape) is true,
 * x elsewhere. The gradient reaches x where the mask is false. An int32 x needs an integral value.
 */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  checkMaskShape('maskedFill', x, mask);
  if (x.dtype === 'int32') {
    if (!Number.isInteger(value))
      throw new Error(`maskedFill: value ${value} is not an integer, and the input is int32`);
    return typedMap(
      'maskedFill',
      `select(a, alpha, b != ${mask.dtype === 'int32' ? '0' : '0.0'})`,
      [x, mask],
      'int32',
      value,
    );
  }
  return maskedFillFloat(x, mask, value);
}

function triangle(op: string, x: Tensor, diagonal: number, keepLower: boolean): Tensor {
  if (x.rank < 2) throw new Error(`${op}: expected a tensor of at least 2 dims, got ${formatShape(x.shape)}`);
  if (!Number.isInteger(diagonal)) throw new Error(`${op}: diagonal must be an integer, got ${diagonal}`);
  const H = x.shape[x.rank - 2]!;
  const W = x.shape[x.rank - 1]!;
  // 1 where the element is zeroed: above the diagonal for tril, below it for triu.
  const drop = new Float32Array(H * W);
  for (let i = 0; i < H; i++)
    for (let j = 0; j < W; j++) drop[i * W + j] = (keepLower ? j - i > diagonal : j - i < diagonal) ? 1 : 0;
  const mask = tensor(drop, [H, W]);
  const out = maskedFill(x, mask, 0);
  if (!out.requiresGrad) mask.dispose();
  return out;
}

/** Lower triangle of the last two dims (torch.tril): elements with column - row <= diagonal; zeros elsewhere. */
export const tril = (x: Tensor, diagonal = 0) => triangle('tril', x, diagonal, true);
/** Upper triangle of the last two dims (torch.triu): elements with column - row >= diagonal; zeros elsewhere. */
export const triu = (x: Tensor, diagonal = 0) => triangle('triu', x, diagonal, false);

async function hostValues(x: Tensor): Promise<Float32Array | Int32Array> {
  return x.dtype === 'int32' ? x.intData() : x.data();
}

/**
 * Coordinates of the non-zero elements (torch.nonzero): int32 [count, rank], in row-major order. The count
 * depends on the data, so this reads x back and is asynchronous. NaN counts as non-zero.
 */
export async function nonzero(x: Tensor): Promise<Tensor> {
  const values = await hostValues(x);
  const coords: number[] = [];
  const strides = x.shape.map((_, d) => sizeOf(x.shape.slice(d + 1)));
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    if (values[i] === 0) continue;
    count++;
    for (let d = 0; d < x.rank; d++) coords.push(Math.floor(i / strides[d]!) % x.shape[d]!);
  }
  return tensor(Int32Array.from(coords), [count, x.rank], 'int32');
}

/**
 * Boolean-mask indexing, PyTorch's x[mask]: `mask` (float32 non-zero, or int32) has the shape of x's leading
 * dims, and the result stacks the selected entries: [count, ...x.shape[mask.rank:]] (1-D for a mask of x's
 * full shape). The count depends on the data, so the mask is read back and this is asynchronous; the selection
 * itself runs on the device as an index_select, so gradients reach the selected entries of x. An int32 x is
 * selected on the host.
 */
export async function booleanMask(x: Tensor, mask: Tensor): Promise<Tensor> {
  const lead = x.shape.slice(0, mask.rank);
  if (mask.rank === 0 || mask.rank > x.rank || lead.some((d, i) => d !== mask.shape[i])) {
    throw new Error(
      `booleanMask: mask ${formatShape(mask.shape)} must match the leading dims of the input ${formatShape(x.shape)}`,
    );
  }
  const m = await hostValues(mask);
  const picked: number[] = [];
  for (let i = 0; i < m.length; i++) if (m[i] !== 0) picked.push(i);
  const rest = x.shape.slice(mask.rank);
  const inner = sizeOf(rest);
  if (x.dtype === 'int32') {
    const v = await x.intData();
    const out = new Int32Array(picked.length * inner);
    picked.forEach((p, k) => out.set(v.subarray(p * inner, (p + 1) * inner), k * inner));
    return tensor(out, [picked.length, ...rest], 'int32');
  }
  const index = tensor(Int32Array.from(picked), [picked.length], 'int32');
  const flat = reshape(x, [sizeOf(lead), ...rest]);
  const out = indexSelect(flat, 0, index);
  if (!out.requiresGrad) {
    index.dispose();
    flat.dispose();
  }
  return out;
}
