import { copyGrid, fillKernel } from '@leffa-webgpu/kernels-wgsl';
import { activeDevice } from '../device/device.js';
import { assertShape, formatShape, sizeOf } from '../tensor/shape.js';
import { Storage } from '../tensor/storage.js';
import { type DType, Tensor, checkDType } from '../tensor/tensor.js';
import { floatToHalf } from '../tensor/half.js';
import { emptyTensor, launch, requireHalf } from './launch.js';

type Nested = number | readonly Nested[];

function flatten(data: Nested, shape: number[], out: number[], depth = 0): void {
  if (typeof data === 'number') {
    out.push(data);
    return;
  }
  if (shape.length <= depth) shape.push(data.length);
  else if (shape[depth] !== data.length)
    throw new Error(
      `tensor: ragged nested array (expected length ${shape[depth]} at depth ${depth}, got ${data.length})`,
    );
  for (const d of data) flatten(d, shape, out, depth + 1);
}

/**
 * A tensor from CPU values: a typed array or (nested) number array, with an explicit shape for flat data.
 * dtype defaults to int32 for Int32Array input and float32 otherwise; float16 rounds the values to nearest even.
 */
export function tensor(
  data: Nested | Float32Array | Int32Array | readonly number[],
  shape?: readonly number[],
  dtype?: DType,
): Tensor {
  let values: ArrayLike<number>;
  let inferred: number[];
  if (data instanceof Float32Array || data instanceof Int32Array) {
    values = data;
    inferred = [data.length];
  } else {
    const flat: number[] = [];
    inferred = [];
    flatten(data as Nested, inferred, flat);
    values = flat;
  }
  const finalShape = shape ? [...shape] : inferred;
  assertShape('tensor', finalShape);
  if (sizeOf(finalShape) !== values.length) {
    throw new Error(
      `tensor: ${values.length} values do not fill shape ${formatShape(finalShape)} (${sizeOf(finalShape)} elements)`,
    );
  }
  const dt: DType = dtype ?? (data instanceof Int32Array ? 'int32' : 'float32');
  checkDType('tensor', dt);
  const device = activeDevice();
  if (dt === 'float16') requireHalf(device, 'tensor');
  const typed =
    dt === 'int32'
      ? Int32Array.from(values)
      : dt === 'float16'
        ? floatToHalf(values)
        : values instanceof Float32Array
          ? values
          : Float32Array.from(values);
  const shapeText = formatShape(finalShape);
  device.checkAllocation('tensor', shapeText, typed.byteLength);
  return new Tensor(
    new Storage(device, device.upload(typed, `tensor: a tensor of shape ${shapeText}`), typed.byteLength),
    finalShape,
    dt,
  );
}

/** A float16 tensor holding IEEE half bits as they are (weights stored as F16: no widening, no rounding). */
export function tensorFromHalfBits(bits: Uint16Array, shape: readonly number[]): Tensor {
  assertShape('tensorFromHalfBits', shape);
  if (sizeOf(shape) !== bits.length) {
    throw new Error(
      `tensorFromHalfBits: ${bits.length} values do not fill shape ${formatShape(shape)} (${sizeOf(shape)} elements)`,
    );
  }
  const device = activeDevice();
  requireHalf(device, 'tensorFromHalfBits');
  const shapeText = formatShape(shape);
  device.checkAllocation('tensorFromHalfBits', shapeText, bits.byteLength);
  return new Tensor(
    new Storage(device, device.upload(bits, `tensorFromHalfBits: a tensor of shape ${shapeText}`), bits.byteLength),
    [...shape],
    'float16',
  );
}

const bitsOf = (value: number, dtype: DType) =>
  dtype === 'int32' ? value | 0 : new Uint32Array(new Float32Array([value]).buffer)[0]!;

/** A tensor of `value` (allocation errors name `op`). */
function filled(op: string, shape: readonly number[], value: number, dtype: DType): Tensor {
  const t = emptyTensor(shape, dtype, op);
  launch(fillKernel(), [], [t], { n: t.size, value: bitsOf(value, dtype) >>> 0 }, copyGrid(t.size));
  return t;
}

export const full = (shape: readonly number[], value: number, dtype: DType = 'float32'): Tensor =>
  filled('full', shape, value, dtype);
export const zeros = (shape: readonly number[], dtype: DType = 'float32') => filled('zeros', shape, 0, dtype);
export const ones = (shape: readonly number[], dtype: DType = 'float32') => filled('ones', shape, 1, dtype);

export function fullLike(like: { shape: readonly number[]; dtype: DType }, value: number): Tensor {
  return full(like.shape, value, like.dtype);
}
export const zerosLike = (like: { shape: readonly number[]; dtype: DType }) => fullLike(like, 0);
export const onesLike = (like: { shape: readonly number[]; dtype: DType }) => fullLike(like, 1);

/** Values start, start+step, ... below end (PyTorch's arange), computed on the CPU in float64. */
export function arange(start: number, end?: number, step = 1, dtype: DType = 'float32'): Tensor {
  checkDType('arange', dtype);
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new Error('arange: step must be non-zero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const values = Array.from({ length: n }, (_, i) => start + i * step);
  return tensor(values, [n], dtype);
}

/** n evenly spaced values from start to end inclusive. */
export function linspace(start: number, end: number, n: number): Tensor {
  const values = Array.from({ length: n }, (_, i) => (n === 1 ? start : start + ((end - start) * i) / (n - 1)));
  return tensor(values, [n]);
}

/** Identity matrix. */
export function eye(n: number, m = n): Tensor {
  const values = new Float32Array(n * m);
  for (let i = 0; i < Math.min(n, m); i++) values[i * m + i] = 1;
  return tensor(values, [n, m]);
}

/** Waits for all queued GPU work (for timing). */
export const sync = () => activeDevice().sync();
