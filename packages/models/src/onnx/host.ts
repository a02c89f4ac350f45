import { type OnnxDataType, type OnnxTensor, isFloatType } from './reader.js';

/**
 * Host-side tensor arithmetic for an ONNX graph's size computations (Shape -> Gather -> Concat -> Resize sizes
 * and the like) and for folding constant subgraphs at load (e.g. Abs(weight) + eps of an exported InPlaceABN).
 */

export const numel = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

export function hostTensor(dataType: OnnxDataType, dims: number[], values: ArrayLike<number>): OnnxTensor {
  const data = isFloatType(dataType) ? new Float32Array(values) : new Float64Array(values);
  if (data.length !== numel(dims)) throw new Error(`internal: ${data.length} values for dims [${dims.join(', ')}]`);
  return { dataType, dims, data };
}

export const ints = (values: readonly number[]): OnnxTensor => hostTensor('int64', [values.length], values);

/** Numpy broadcasting of two shapes. */
export function broadcastShapes(a: readonly number[], b: readonly number[], what: string): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1)
      throw new Error(`${what}: shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

function broadcastIndex(outDims: readonly number[], inDims: readonly number[]): Int32Array {
  const n = numel(outDims);
  const idx = new Int32Array(n);
  const r = outDims.length;
  const inStrides = new Array<number>(r).fill(0);
  let s = 1;
  for (let d = inDims.length - 1; d >= 0; d--) {
    inStrides[r - inDims.length + d] = inDims[d] === 1 ? 0 : s;
    s *= inDims[d]!;
  }
  const coord = new Array<number>(r).fill(0);
  for (let i = 0; i < n; i++) {
    let off = 0;
    for (let d = 0; d < r; d++) off += coord[d]! * inStrides[d]!;
    idx[i] = off;
    for (let d = r - 1; d >= 0; d--) {
      if (++coord[d]! < outDims[d]!) break;
      coord[d] = 0;
    }
  }
  return idx;
}

const INT_DIV = (a: number, b: number) => (b === 0 ? 0 : Math.trunc(a / b));

/** Elementwise binary op with broadcasting; integer types divide with truncation as ONNX's Div. */
export function hostBinary(op: string, a: OnnxTensor, b: OnnxTensor): OnnxTensor {
  const dims = broadcastShapes(a.dims, b.dims, op);
  const ia = broadcastIndex(dims, a.dims);
  const ib = broadcastIndex(dims, b.dims);
  const float = isFloatType(a.dataType);
  const f: (x: number, y: number) => number = {
    Add: (x: number, y: number) => x + y,
    Sub: (x: number, y: number) => x - y,
    Mul: (x: number, y: number) => x * y,
    Div: float ? (x: number, y: number) => x / y : INT_DIV,
    Pow: (x: number, y: number) => x ** y,
    Max: Math.max,
    Min: Math.min,
    Equal: (x: number, y: number) => (x === y ? 1 : 0),
    Less: (x: number, y: number) => (x < y ? 1 : 0),
    Greater: (x: number, y: number) => (x > y ? 1 : 0),
  }[op]!;
  const out = new Array<number>(ia.length);
  for (let i = 0; i < ia.length; i++) out[i] = f(a.data[ia[i]!]!, b.data[ib[i]!]!);
  const dataType = op === 'Equal' || op === 'Less' || op === 'Greater' ? 'bool' : a.dataType;
  return hostTensor(dataType, dims, out);
}

export function hostUnary(op: string, a: OnnxTensor): OnnxTensor {
  const f: (x: number) => number = {
    Abs: Math.abs,
    Neg: (x: number) => -x,
    Sqrt: Math.sqrt,
    Floor: Math.floor,
    Ceil: Math.ceil,
    Reciprocal: (x: number) => 1 / x,
    Exp: Math.exp,
    Log: Math.log,
    Relu: (x: number) => Math.max(x, 0),
    Sigmoid: (x: number) => 1 / (1 + Math.exp(-x)),
    Not: (x: number) => (x ? 0 : 1),
  }[op]!;
  return hostTensor(a.dataType, [...a.dims], Array.from(a.data, f));
}

const CAST: Record<number, OnnxDataType> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
  16: 'bfloat16',
};

export function castTarget(to: number, what: string): OnnxDataType {
  const t = CAST[to];
  if (!t) throw new Error(`${what}: cast to data type ${to} is not supported`);
  return t;
}

export function hostCast(a: OnnxTensor, to: OnnxDataType): OnnxTensor {
  if (isFloatType(to)) return hostTensor(to, [...a.dims], a.data);
  const v = Array.from(a.data, (x) => (to === 'bool' ? (x ? 1 : 0) : Math.trunc(x)));
  return hostTensor(to, [...a.dims], v);
}

export const normAxis = (axis: number, rank: number, what: string): number => {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank)
    throw new Error(`${what}: axis ${axis} is out of range for rank ${rank}`);
  return a;
};

export function hostGather(x: OnnxTensor, indices: OnnxTensor, axis: number, what: string): OnnxTensor {
  const a = normAxis(axis, x.dims.length, what);
  const outer = numel(x.dims.slice(0, a));
  const inner = numel(x.dims.slice(a + 1));
  const n = x.dims[a]!;
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const raw of indices.data) {
      const i = raw < 0 ? raw + n : raw;
      if (!(i >= 0 && i < n)) throw new Error(`${what}: index ${raw} is out of range for axis ${axis} of size ${n}`);
      for (let k = 0; k < inner; k++) out.push(x.data[(o * n + i) * inner + k]!);
    }
  }
  return hostTensor(x.dataType, [...x.dims.slice(0, a), ...indices.dims, ...x.dims.slice(a + 1)], out);
}

/** ONNX Slice's clamping of start/end for one axis; returns the indices taken. */
export function sliceIndices(size: number, start: number, end: number, step: number, what: string): number[] {
  if (step === 0) throw new Error(`${what}: slice step 0`);
  const clampIdx = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + size : v, lo), hi);
  const out: number[] = [];
  if (step > 0) {
    const s = clampIdx(start, 0, size);
    const e = clampIdx(end, 0, size);
    for (let i = s; i < e; i += step) out.push(i);
  } else {
    const s = clampIdx(start, -1, size - 1);
    const e = clampIdx(end, -1, size - 1);
    for (let i = s; i > e; i += step) out.push(i);
  }
  return out;
}

export function hostSlice(x: OnnxTensor, perAxis: (number[] | null)[]): OnnxTensor {
  const r = x.dims.length;
  const picks = x.dims.map((d, k) => perAxis[k] ?? Array.from({ length: d }, (_, i) => i));
  const dims = picks.map((p) => p.length);
  const strides = new Array<number>(r).fill(1);
  for (let d = r - 2; d >= 0; d--) strides[d] = strides[d + 1]! * x.dims[d + 1]!;
  const out: number[] = [];
  const coord = new Array<number>(r).fill(0);
  const n = numel(dims);
  for (let i = 0; i < n; i++) {
    let off = 0;
    for (let d = 0; d < r; d++) off += picks[d]![coord[d]!]! * strides[d]!;
    out.push(x.data[off]!);
    for (let d = r - 1; d >= 0; d--) {
      if (++coord[d]! < dims[d]!) break;
      coord[d] = 0;
    }
  }
  return hostTensor(x.dataType, dims, out);
}

export function hostConcat(xs: OnnxTensor[], axis: number, what: string): OnnxTensor {
  const r = xs[0]!.dims.length;
  const a = normAxis(axis, r, what);
  const outer = numel(xs[0]!.dims.slice(0, a));
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const x of xs) {
      const chunk = numel(x.dims.slice(a));
      for (let k = 0; k < chunk; k++) out.push(x.data[o * chunk + k]!);
    }
  }
  const dims = [...xs[0]!.dims];
  dims[a] = xs.reduce((s, x) => s + x.dims[a]!, 0);
  return hostTensor(xs[0]!.dataType, dims, out);
}

/** ONNX Reshape's target: 0 copies the input's size (unless allowzero), one -1 is inferred. */
export function reshapeTarget(
  inDims: readonly number[],
  shape: readonly number[],
  allowZero: boolean,
  what: string,
): number[] {
  const out = shape.map((s, i) => (s === 0 && !allowZero ? inDims[i]! : s));
  const known = out.filter((s) => s !== -1);
  const total = numel(inDims);
  if (out.filter((s) => s === -1).length > 1)
    throw new Error(`${what}: more than one -1 in shape [${shape.join(', ')}]`);
  if (out.includes(-1)) {
    const rest = numel(known);
    if (rest === 0 || total % rest !== 0)
      throw new Error(`${what}: cannot reshape [${inDims.join(', ')}] to [${shape.join(', ')}]`);
    out[out.indexOf(-1)] = total / rest;
  }
  if (numel(out) !== total) throw new Error(`${what}: cannot reshape [${inDims.join(', ')}] to [${shape.join(', ')}]`);
  return out;
}

export function hostTranspose(x: OnnxTensor, perm: readonly number[], what: string): OnnxTensor {
  const r = x.dims.length;
  if (perm.length !== r || [...perm].sort((a, b) => a - b).some((p, i) => p !== i))
    throw new Error(`${what}: perm [${perm.join(', ')}] is not a permutation of ${r} axes`);
  const dims = perm.map((p) => x.dims[p]!);
  const inStrides = new Array<number>(r).fill(1);
  for (let d = r - 2; d >= 0; d--) inStrides[d] = inStrides[d + 1]! * x.dims[d + 1]!;
  const out: number[] = [];
  const coord = new Array<number>(r).fill(0);
  const n = numel(dims);
  for (let i = 0; i < n; i++) {
    let off = 0;
    for (let d = 0; d < r; d++) off += coord[d]! * inStrides[perm[d]!]!;
    out.push(x.data[off]!);
    for (let d = r - 1; d >= 0; d--) {
      if (++coord[d]! < dims[d]!) break;
      coord[d] = 0;
    }
  }
  return hostTensor(x.dataType, dims, out);
}
