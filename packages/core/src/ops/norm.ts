import { defineOp } from '../autograd/op.js';
import { formatShape, normalizeAxes } from '../tensor/shape.js';
import { type Tensor, isFloatDType } from '../tensor/tensor.js';
import { abs, map, ne, pow, sqrt, square } from './elementwise.js';
import { typedMap } from './integer.js';
import { max, min, sum } from './reduce.js';
import { reshape } from './shape.js';

type Axes = number | readonly number[] | undefined;

/**
 * Vector p-norm over axes (all by default), torch.linalg.vector_norm / torch.norm(x, p, dim): p = 2 (default),
 * 1, Infinity (max |x|), -Infinity (min |x|), 0 (number of non-zeros) or any other real p as
 * (sum |x|^p)^(1/p). Gradients follow PyTorch 1.13's norm_backward: zero where the norm is 0 (p >= 1), the
 * gradient of an infinity norm shared among the tied elements (and NaNs), none for p = 0.
 */
export const norm = defineOp('norm', {
  forward: (ctx, x: Tensor, p: number = 2, axes?: Axes, keepdim: boolean = false) => {
    if (typeof p !== 'number' || Number.isNaN(p))
      throw new Error(`norm: p must be a number (Infinity for the max norm), got ${String(p)}`);
    if (!isFloatDType(x.dtype))
      throw new Error(`norm: expected a float tensor, got ${x.dtype} ${formatShape(x.shape)}`);
    const list = normalizeAxes('norm', axes, x.rank);
    ctx.save({ list, keepShape: x.shape.map((d, i) => (list.includes(i) ? 1 : d)) });
    if (p === Infinity) return max(abs(x), list, keepdim);
    if (p === -Infinity) return min(abs(x), list, keepdim);
    if (p === 0) return sum(ne(x, 0), list, keepdim);
    if (p === 1) return sum(abs(x), list, keepdim);
    if (p === 2) return sqrt(sum(square(x), list, keepdim));
    return pow(sum(pow(abs(x), p), list, keepdim), 1 / p);
  },
  backward: ({ args: [x, p = 2], outputs: [y], saved: { list, keepShape } }, g) => {
    // Inputs of the gradient kernels: a = x, b = the norm, c = the upstream gradient (both broadcast from keepShape).
    const n = reshape(y!, keepShape);
    const gk = reshape(g, keepShape);
    const inputs = [x, n, gk];
    if (p === 0) return [map('norm.backward', '0.0', [x])];
    if (p === 1) return [map('norm.backward', 'sign(a) * c', inputs)];
    if (p === 2) return [map('norm.backward', 'select(a * (c / b), 0.0, b == 0.0)', inputs)];
    if (Math.abs(p) === Infinity) {
      const mask = map('norm.backward', 'select(0.0, 1.0, abs(a) == b || isnan_(a))', [x, n]);
      const count = sum(mask, list, true);
      return [map('norm.backward', 'sign(a) * b * c / d', [x, mask, gk, count])];
    }
    if (p < 1)
      return [
        map('norm.backward', 'select(sign(a) * pow(abs(a), alpha), 0.0, a == 0.0) * c * pow(b, -alpha)', inputs, p - 1),
      ];
    if (p < 2)
      return [
        map('norm.backward', 'sign(a) * pow(abs(a), alpha) * select(c / pow(b, alpha), 0.0, b == 0.0)', inputs, p - 1),
      ];
    return [
      map('norm.backward', 'a * pow(abs(a), alpha - 1.0) * select(c / pow(b, alpha), 0.0, b == 0.0)', inputs, p - 1),
    ];
  },
});

/** A copy with its own storage (torch.clone); the gradient passes through. */
export const clone = defineOp('clone', {
  forward: (_ctx, x: Tensor) => (x.dtype === 'int32' ? typedMap('clone', 'a', [x], 'int32') : map('clone', 'a', [x])),
  backward: (_ctx, g) => [g.alias()],
});
