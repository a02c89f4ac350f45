import {
  type SerialReduceOp,
  type WgslScalar,
  serialReduceGrid,
  serialReduceKernel,
  typedElementwiseGrid,
  typedElementwiseKernel,
} from '@leffa-webgpu/kernels-wgsl';
import { broadcastShapes, formatShape, normalizeAxes, sizeOf } from '../tensor/shape.js';
import type { DType, Tensor } from '../tensor/tensor.js';
import { cast } from './cast.js';
import { emptyTensor, launch } from '../forward/launch.js';
import { broadcastLayout } from '../forward/map.js';

/*
 * int32 arithmetic with PyTorch's semantics and result dtypes (int64 results of PyTorch are int32 here):
 *   - int32 (op) int32, or int32 (op) an integral number: int32, wrapping on overflow (add, sub, mul,
 *     maximum, minimum, neg, abs, sum, prod, floorDivide, where);
 *   - int32 (op) float32 tensor, or int32 (op) a non-integral number: the int32 operand is converted and the
 *     float32 op runs (gradients flow to the float32 operand);
 *   - div is true division (float32), as PyTorch's `/`; floorDivide is `//`;
 *   - comparisons give the library's float 0/1 masks whatever the operand dtypes.
 * A JavaScript number is integral when Number.isInteger says so (2.0 is the integer 2).
 */

export type Operand = Tensor | number;

const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

const isTensor = (v: Operand): v is Tensor => typeof v !== 'number';
const isIntTensor = (v: Operand): v is Tensor => isTensor(v) && v.dtype === 'int32';

/**
 * How a binary op with these operands runs: 'int' (int32 kernel), 'float' (int32 operands converted to
 * float32 first) or null (no int32 tensor involved: the float32 op as before).
 */
export function binaryKind(op: string, a: Operand, b: Operand): 'int' | 'float' | null {
  if (!isIntTensor(a) && !isIntTensor(b)) return null;
  const intLike = (v: Operand) => (isTensor(v) ? v.dtype === 'int32' : Number.isInteger(v));
  if (!intLike(a) || !intLike(b)) return 'float';
  for (const v of [a, b]) {
    if (typeof v === 'number' && (v < I32_MIN || v > I32_MAX)) {
      throw new RangeError(
        `${op}: the scalar ${v} does not fit an int32 operand (expected ${I32_MIN} <= value <= ${I32_MAX})`,
      );
    }
  }
  return 'int';
}

/**
 * Runs `fn` on the operands with int32 tensors converted to float32 (PyTorch's promotion of int32 with a
 * float operand). The converted copies are freed afterwards unless the result is recorded for backward
 * (its graph node holds them; the enclosing scope or the garbage collector frees them then).
 */
export function withFloatOperands(operands: readonly Operand[], fn: (...xs: Operand[]) => Tensor): Tensor {
  const temps: Tensor[] = [];
  const converted = operands.map((v) => {
    if (!isIntTensor(v)) return v;
    const f = cast(v, 'float32');
    temps.push(f);
    return f;
  });
  let result: Tensor | undefined;
  try {
    result = fn(...converted);
    return result;
  } finally {
    if (!result?.requiresGrad) for (const t of temps) t.dispose();
  }
}

const wgslType = (t: DType): WgslScalar => (t === 'int32' ? 'i32' : 'f32');

/**
 * out = expr(a, b, c) over typed inputs with broadcasting; `alpha`/`beta` are i32 uniforms. The int32
 * counterpart of elementwise `map` (not recorded by autograd: int32 results have no gradient).
 */
export function typedMap(op: string, expr: string, inputs: readonly Tensor[], out: DType, alpha = 0, beta = 0): Tensor {
  const shape = broadcastShapes(op, ...inputs.map((t) => t.shape));
  const result = emptyTensor(shape, out, op);
  if (result.size === 0) return result;
  const uniforms: Record<string, number | number[]> = { n: result.size, alpha, beta };
  const rank = broadcastLayout(op, shape, inputs, uniforms);
  const kernel = typedElementwiseKernel({
    expr,
    inputs: inputs.map((t) => wgslType(t.dtype)),
    out: wgslType(out),
    rank,
  });
  launch(kernel, inputs, [result], uniforms, typedElementwiseGrid(result.size));
  return result;
}

/** int32 expressions of the binary ops that keep int32 (others promote: div is true division). */
const INT_BINARY: Record<string, (x: string, y: string) => string> = {
  add: (x, y) => `${x} + ${y}`,
  sub: (x, y) => `${x} - ${y}`,
  mul: (x, y) => `${x} * ${y}`,
  maximum: (x, y) => `max(${x}, ${y})`,
  minimum: (x, y) => `min(${x}, ${y})`,
  floorDivide: (x, y) => `floordiv_i32(${x}, ${y})`,
};

/** Whether `op` has an int32 kernel (when both operands are int32-like). */
export const hasIntBinary = (op: string) => op in INT_BINARY;

/** An int32 binary op; either operand may be an integral number (a uniform). */
export function intBinary(op: string, a: Operand, b: Operand): Tensor {
  const expr = INT_BINARY[op];
  if (!expr) throw new Error(`${op}: no int32 kernel`);
  if (typeof b === 'number') return typedMap(op, expr('a', 'alpha'), [a as Tensor], 'int32', b);
  if (typeof a === 'number') return typedMap(op, expr('alpha', 'a'), [b], 'int32', a);
  return typedMap(op, expr('a', 'b'), [a, b], 'int32');
}

/** A comparison with an int32 operand (both int32-like): a float 0/1 mask. */
export function intCompare(op: string, cmp: string, a: Operand, b: Operand): Tensor {
  if (typeof b === 'number') return typedMap(op, `select(0.0, 1.0, a ${cmp} alpha)`, [a as Tensor], 'float32', b);
  if (typeof a === 'number') return typedMap(op, `select(0.0, 1.0, alpha ${cmp} a)`, [b], 'float32', a);
  return typedMap(op, `select(0.0, 1.0, a ${cmp} b)`, [a, b], 'float32');
}

/** An int32 unary op (neg, abs: wrapping, so abs(i32 min) is i32 min, as PyTorch). */
export const intUnary = (op: string, expr: string, x: Tensor) => typedMap(op, expr, [x], 'int32');

/**
 * A serial reduction over axes (int32 sum/max/min, and products of either dtype), axis by axis from the last,
 * each as an [O, R, I] view. Empty reductions give the identity (sum 0, prod 1); max/min of nothing throw.
 */
export function serialReduce(
  op: string,
  kind: SerialReduceOp,
  x: Tensor,
  axes: number | readonly number[] | undefined,
  keepdim: boolean,
): Tensor {
  const list = normalizeAxes(op, axes, x.rank);
  const keepShape = x.shape.map((d, i) => (list.includes(i) ? 1 : d));
  const outShape = keepdim ? keepShape : x.shape.filter((_, i) => !list.includes(i));
  if ((kind === 'max' || kind === 'min') && list.some((a) => x.shape[a] === 0)) {
    throw new Error(`${op}: cannot reduce over an empty dimension (shape ${formatShape(x.shape)})`);
  }
  const type = wgslType(x.dtype);
  let cur = x;
  let shape = [...x.shape];
  for (const a of [...list].reverse()) {
    const O = sizeOf(shape.slice(0, a));
    const R = shape[a]!;
    const I = sizeOf(shape.slice(a + 1));
    shape[a] = 1;
    const next = emptyTensor(shape, x.dtype, op);
    if (next.size > 0) launch(serialReduceKernel(kind, type), [cur], [next], { O, R, I }, serialReduceGrid(O * I));
    if (cur !== x) cur.dispose();
    cur = next;
  }
  if (cur === x) return x.alias(outShape);
  const out = cur.alias(outShape);
  cur.dispose();
  return out;
}
