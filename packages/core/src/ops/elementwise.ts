import { GELU_WGSL } from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import type { Tensor } from '../tensor/tensor.js';
import { full } from '../forward/creation.js';
import { binaryKind, hasIntBinary, intBinary, intCompare, intUnary, typedMap, withFloatOperands } from './integer.js';
import { map } from '../forward/map.js';
import { sumTo } from '../forward/reduce.js';

// The fused elementwise kernel is forward-layer code; re-exported here, where users have found it.
export { map };

// ---------------------------------------------------------------- unary

/** Renames the single-letter variables of an expression (one pass, so renames never chain). */
const rename = (expr: string, names: Record<string, string>) => expr.replace(/\b[gaby]\b/g, (v) => names[v] ?? v);

/** A differentiable unary op: forward expression in `a`, and dL/da as an expression in g (grad), a (input), y (output). */
function unary(name: string, expr: string, gradExpr: string) {
  // The gradient kernel reads (g, a, y) as (a, b, c).
  const grad = rename(gradExpr, { g: 'a', a: 'b', y: 'c' });
  const usesY = /\by\b/.test(gradExpr);
  return defineOp(name, {
    forward: (_ctx, x: Tensor, alpha: number = 0, beta: number = 0) => map(name, expr, [x], alpha, beta),
    backward: ({ args: [x, alpha, beta], outputs: [y] }, g) => [
      map(`${name}.backward`, grad, usesY ? [g, x, y!] : [g, x], alpha ?? 0, beta ?? 0),
    ],
  });
}

const negFloat = unary('neg', '-a', '-g');
/** -x; int32 stays int32 (wrapping). */
export const neg = (x: Tensor): Tensor => (x.dtype === 'int32' ? intUnary('neg', '-a', x) : negFloat(x));
export const exp = unary('exp', 'exp(a)', 'g * y');
export const log = unary('log', 'log(a)', 'g / a');
export const sqrt = unary('sqrt', 'sqrt(a)', 'g * 0.5 / y');
export const rsqrt = unary('rsqrt', 'inverseSqrt(a)', '-0.5 * g * y * y * y');
const absFloat = unary('abs', 'abs(a)', 'g * sign(a)');
/** |x|; int32 stays int32 (abs of the int32 minimum wraps to itself, as PyTorch). */
export const abs = (x: Tensor): Tensor => (x.dtype === 'int32' ? intUnary('abs', 'abs(a)', x) : absFloat(x));
// NaN passes through relu, and so does the gradient (PyTorch tests result <= 0, false for NaN).
export const relu = unary('relu', 'select(max(a, 0.0), a, isnan_(a))', 'select(0.0, g, a > 0.0 || isnan_(a))');
export const sigmoid = unary('sigmoid', 'sigmoid_(a)', 'g * y * (1.0 - y)');
export const tanh = unary('tanh', 'tanh_(a)', 'g * (1.0 - y * y)');
export const silu = unary('silu', 'a * sigmoid_(a)', 'g * (sigmoid_(a) * (1.0 + a * (1.0 - sigmoid_(a))))');
export const softplus = unary('softplus', 'softplus_(a)', 'g * sigmoid_(a)');
export const sin = unary('sin', 'sin(a)', 'g * cos(a)');
export const cos = unary('cos', 'cos(a)', '-g * sin(a)');
export const square = unary('square', 'a * a', '2.0 * g * a');
export const reciprocal = unary('reciprocal', '1.0 / a', '-g * y * y');
/** log(1 + x), accurate for small x. */
export const log1p = unary('log1p', 'log1p_(a)', 'g / (1.0 + a)');
/** The error function (|error| < 1.5e-7). */
export const erf = unary('erf', 'erf_(a)', 'g * 1.1283791670955126 * exp(-a * a)');
const geluErf = unary('gelu', GELU_WGSL.erf.value('a'), `g * (${GELU_WGSL.erf.grad('a')})`);
const geluTanh = unary('gelu_tanh', GELU_WGSL.tanh.value('a'), `g * (${GELU_WGSL.tanh.grad('a')})`);
/** GELU, exact (erf) by default or the tanh approximation (PyTorch's approximate='tanh'). */
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none') =>
  approximate === 'tanh' ? geluTanh(x) : geluErf(x);
const leakyReluOp = unary('leaky_relu', 'select(alpha * a, a, a > 0.0)', 'select(alpha * g, g, a > 0.0)');
export const leakyRelu = (x: Tensor, negativeSlope = 0.01) => leakyReluOp(x, negativeSlope);
const eluOp = unary('elu', 'select(alpha * (exp(a) - 1.0), a, a > 0.0)', 'select(g * (y + alpha), g, a > 0.0)');
export const elu = (x: Tensor, alpha = 1) => eluOp(x, alpha);
const clampOp = unary('clamp', 'clamp_(a, alpha, beta)', 'select(0.0, g, a >= alpha && a <= beta && !isnan_(a))');
/**
 * Clamps to [min, max] (an absent bound is infinite, so infinities pass through); NaN stays NaN with zero
 * gradient; the gradient flows where the input is inside the range, bounds included (PyTorch's convention).
 */
export const clamp = (x: Tensor, min = -Infinity, max = Infinity) => clampOp(x, min, max);

/** Non-differentiable elementwise functions (zero gradient almost everywhere). */
export const sign = (x: Tensor) => map('sign', 'sign(a)', [x]);
export const floor = (x: Tensor) => map('floor', 'floor(a)', [x]);
export const round = (x: Tensor) => map('round', 'round(a)', [x]);
export const isNan = (x: Tensor) => map('isNan', 'select(0.0, 1.0, isnan_(a))', [x]);

// ---------------------------------------------------------------- binary

type Operand = Tensor | number;

/**
 * A differentiable binary op with broadcasting; either operand may be a number (passed as a uniform).
 * `expr(x, y)` builds the forward expression; `grads` gives dL/da and dL/db as expressions in g, a, b, y.
 */
function binary(name: string, expr: (x: string, y: string) => string, grads: [string, string]) {
  const tensorTensor = defineOp(name, {
    forward: (_ctx, a: Tensor, b: Tensor) => map(name, expr('a', 'b'), [a, b]),
    backward: ({ args: [a, b], outputs: [y], needsGrad }, g) => {
      // Gradient kernels read (g, a, b, y) as (a, b, c, d).
      const names = { g: 'a', a: 'b', b: 'c', y: 'd' };
      const one = (i: number, shape: readonly number[]) => {
        if (!needsGrad[i]) return null;
        // The gradient is g itself (add, sub's first operand): no kernel, even when both operands get it; the
        // engine gives each holder an alias and keeps leaf gradients apart (see `backward`).
        if (grads[i] === 'g') return sumTo(g, shape);
        return sumTo(map(`${name}.backward`, rename(grads[i]!, names), [g, a, b, y!]), shape);
      };
      return [one(0, a.shape), one(1, b.shape)];
    },
  });
  const tensorScalar = defineOp(`${name}_scalar`, {
    forward: (_ctx, a: Tensor, s: number) => map(name, expr('a', 'alpha'), [a], s),
    backward: ({ args: [a, s], outputs: [y] }, g) => [
      grads[0] === 'g'
        ? g
        : map(`${name}.backward`, rename(grads[0], { g: 'a', a: 'b', b: 'alpha', y: 'c' }), [g, a, y!], s),
    ],
  });
  const scalarTensor = defineOp(`${name}_rscalar`, {
    forward: (_ctx, s: number, b: Tensor) => map(name, expr('alpha', 'a'), [b], s),
    backward: ({ args: [s, b], outputs: [y] }, g) => [
      grads[1] === 'g'
        ? g
        : map(`${name}.backward`, rename(grads[1], { g: 'a', a: 'alpha', b: 'b', y: 'c' }), [g, b, y!], s),
    ],
  });
  const op = (a: Operand, b: Operand): Tensor => {
    if (typeof a === 'number' && typeof b === 'number')
      throw new Error(`${name}: at least one operand must be a tensor`);
    // int32 operands: PyTorch's promotion (see integer.ts).
    const kind = binaryKind(name, a, b);
    if (kind === 'int' && hasIntBinary(name)) return intBinary(name, a, b);
    if (kind === 'int' && name === 'pow')
      throw new Error(`pow: int32 operands are not supported (cast to float32 first)`);
    if (kind !== null) return withFloatOperands([a, b], (x, y) => op(x!, y!));
    if (typeof b === 'number') return tensorScalar(a as Tensor, b);
    if (typeof a === 'number') return scalarTensor(a, b);
    return tensorTensor(a, b);
  };
  return op;
}

export const add = binary('add', (x, y) => `${x} + ${y}`, ['g', 'g']);
export const sub = binary('sub', (x, y) => `${x} - ${y}`, ['g', '-g']);
export const mul = binary('mul', (x, y) => `${x} * ${y}`, ['g * b', 'g * a']);
export const div = binary('div', (x, y) => `${x} / ${y}`, ['g / b', '-g * a / (b * b)']);
export const pow = binary('pow', (x, y) => `pow_(${x}, ${y})`, ['g * b * pow_(a, b - 1.0)', 'g * y * log(a)']);
// Ties split the gradient evenly, as PyTorch does for maximum/minimum. NaN in either operand gives NaN
// and the whole gradient to both operands (PyTorch 1.13's where(a == b, g / 2, g).masked_fill_(a < b, 0)).
const nanPair = '(isnan_(a) || isnan_(b))';
export const maximum = binary('maximum', (x, y) => `max_(${x}, ${y})`, [
  `g * select(select(select(0.0, 0.5, a == b), 1.0, a > b), 1.0, ${nanPair})`,
  `g * select(select(select(0.0, 0.5, a == b), 1.0, b > a), 1.0, ${nanPair})`,
]);
export const minimum = binary('minimum', (x, y) => `min_(${x}, ${y})`, [
  `g * select(select(select(0.0, 0.5, a == b), 1.0, a < b), 1.0, ${nanPair})`,
  `g * select(select(select(0.0, 0.5, a == b), 1.0, b < a), 1.0, ${nanPair})`,
]);

// ---------------------------------------------------------------- comparisons (masks of 0/1, no gradient)

function compare(name: string, cmp: string) {
  const op = (a: Operand, b: Operand): Tensor => {
    if (typeof a === 'number' && typeof b === 'number')
      throw new Error(`${name}: at least one operand must be a tensor`);
    const kind = binaryKind(name, a, b);
    if (kind === 'int') return intCompare(name, cmp, a, b);
    if (kind === 'float') return withFloatOperands([a, b], (x, y) => op(x!, y!));
    if (typeof b === 'number') return map(name, `select(0.0, 1.0, a ${cmp} alpha)`, [a as Tensor], b);
    if (typeof a === 'number') return map(name, `select(0.0, 1.0, alpha ${cmp} a)`, [b], a);
    return map(name, `select(0.0, 1.0, a ${cmp} b)`, [a, b]);
  };
  return op;
}

export const eq = compare('eq', '==');
export const ne = compare('ne', '!=');
export const lt = compare('lt', '<');
export const le = compare('le', '<=');
export const gt = compare('gt', '>');
export const ge = compare('ge', '>=');

const whereFloat = defineOp('where', {
  forward: (_ctx, cond: Tensor, a: Tensor, b: Tensor) => map('where', 'select(c, b, a != 0.0)', [cond, a, b]),
  backward: ({ args: [cond, a, b], needsGrad }, g) => [
    null,
    needsGrad[1] ? sumTo(map('where.backward', 'select(0.0, b, a != 0.0)', [cond, g]), a.shape) : null,
    needsGrad[2] ? sumTo(map('where.backward', 'select(b, 0.0, a != 0.0)', [cond, g]), b.shape) : null,
  ],
});

/**
 * cond ? a : b elementwise (cond is a mask: non-zero is true, float32 or int32), with broadcasting; gradients
 * flow to a and b. Two int32 branches give int32; an int32 branch with a float32 one gives float32.
 */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  if (a.dtype === 'int32' && b.dtype === 'int32') {
    return typedMap('where', `select(c, b, a != ${cond.dtype === 'int32' ? '0' : '0.0'})`, [cond, a, b], 'int32');
  }
  if (cond.dtype === 'int32' || a.dtype === 'int32' || b.dtype === 'int32') {
    return withFloatOperands([cond, a, b], (c, x, y) => whereFloat(c as Tensor, x as Tensor, y as Tensor));
  }
  return whereFloat(cond, a, b);
}

/**
 * Python's a // b (PyTorch's floor_divide): int32 operands (or integral numbers) give int32, rounding toward
 * negative infinity; a float operand gives float32 (PyTorch's div_floor). Not differentiable. A zero int32
 * divisor raises for a number; inside an int32 tensor it gives 0 (PyTorch raises, which needs a readback).
 */
export function floorDivide(a: Operand, b: Operand): Tensor {
  if (typeof a === 'number' && typeof b === 'number')
    throw new Error('floorDivide: at least one operand must be a tensor');
  const kind = binaryKind('floorDivide', a, b);
  if (kind === 'int') {
    if (b === 0) throw new RangeError('floorDivide: integer division by zero');
    return intBinary('floorDivide', a, b);
  }
  if (kind === 'float') return withFloatOperands([a, b], (x, y) => floorDivide(x!, y!));
  // float32: a number operand becomes a 0-d tensor (the typed kernel's scalars are int32).
  const temps: Tensor[] = [];
  const asTensor = (v: Operand) => (typeof v === 'number' ? (temps.push(full([], v)), temps[temps.length - 1]!) : v);
  try {
    return typedMap('floorDivide', 'floordiv_f32(a, b)', [asTensor(a), asTensor(b)], 'float32');
  } finally {
    for (const t of temps) t.dispose();
  }
}

/** a + alpha * (b - a): linear interpolation with a scalar weight. */
export const lerp = (a: Tensor, b: Tensor, weight: number) => add(a, mul(sub(b, a), weight));
