import { defineOp } from '../autograd/op.js';
import { sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { map } from '../forward/map.js';
import { type ReducePlan as Plan, reduceRaw, reducePlan as plan } from '../forward/reduce.js';
import { sqrt } from './elementwise.js';
import { serialReduce } from './integer.js';
import { expand, reshape } from './shape.js';

// sumTo (the inverse of broadcasting) is forward-layer code; re-exported where users have found it.
export { sumTo } from '../forward/reduce.js';

type Axes = number | readonly number[] | undefined;

/** Broadcasts a reduced gradient (shape with kept 1s) back over the input's shape. */
const spread = (g: Tensor, p: Plan, shape: readonly number[]) => {
  const r = reshape(g, p.keepShape);
  const e = expand(r, shape);
  r.dispose();
  return e;
};

const sumFloat = defineOp('sum', {
  forward: (ctx, x: Tensor, axes?: Axes, keepdim: boolean = false) => {
    const p = plan('sum', x, axes, keepdim);
    ctx.save(p);
    return reduceRaw('sum', 'sum', x, p);
  },
  backward: ({ args: [x], saved }, g) => [spread(g, saved, x.shape)],
});

/** Sum over axes (all by default); int32 sums stay int32 (PyTorch gives int64) and wrap on overflow. */
export const sum = (x: Tensor, axes?: Axes, keepdim = false): Tensor =>
  x.dtype === 'int32' ? serialReduce('sum', 'sum', x, axes, keepdim) : sumFloat(x, axes, keepdim);

export const mean = defineOp('mean', {
  forward: (ctx, x: Tensor, axes?: Axes, keepdim: boolean = false) => {
    const p = plan('mean', x, axes, keepdim);
    ctx.save(p);
    const s = reduceRaw('mean', 'sum', x, p);
    const m = map('mean', 'a * alpha', [s], 1 / (x.size / Math.max(s.size, 1)));
    s.dispose();
    return m;
  },
  backward: ({ args: [x], saved }, g) => {
    const scaled = map('mean.backward', 'a * alpha', [g], g.size / x.size);
    const out = spread(scaled, saved, x.shape);
    scaled.dispose();
    return [out];
  },
});

/** max/min over axes; the gradient is shared equally among tied extrema (PyTorch's amax/amin rule). */
function extremum(name: 'max' | 'min') {
  return defineOp(name, {
    forward: (ctx, x: Tensor, axes?: Axes, keepdim: boolean = false) => {
      const p = plan(name, x, axes, keepdim);
      ctx.save(p);
      return reduceRaw(name, name, x, p);
    },
    backward: ({ args: [x], outputs: [y], saved }, g) => {
      const yFull = spread(y!, saved, x.shape);
      const mask = map(`${name}.backward`, 'select(0.0, 1.0, a == b)', [x, yFull]);
      const count = reduceRaw(`${name}.backward`, 'sum', mask, { ...saved, outShape: saved.keepShape });
      const gFull = spread(g, saved, x.shape);
      const out = map(`${name}.backward`, 'a * b / c', [mask, gFull, count]);
      for (const t of [yFull, mask, count, gFull]) t.dispose();
      return [out];
    },
  });
}

const maxFloat = extremum('max');
const minFloat = extremum('min');
/** Largest value over axes (amax); int32 stays int32. */
export const max = (x: Tensor, axes?: Axes, keepdim = false): Tensor =>
  x.dtype === 'int32' ? serialReduce('max', 'max', x, axes, keepdim) : maxFloat(x, axes, keepdim);
/** Smallest value over axes (amin); int32 stays int32. */
export const min = (x: Tensor, axes?: Axes, keepdim = false): Tensor =>
  x.dtype === 'int32' ? serialReduce('min', 'min', x, axes, keepdim) : minFloat(x, axes, keepdim);

/** Index of the largest value along one axis (int32; first index on ties). */
export function argmax(x: Tensor, axis = -1, keepdim = false): Tensor {
  return reduceRaw('argmax', 'argmax', x, plan('argmax', x, axis, keepdim));
}

export function argmin(x: Tensor, axis = -1, keepdim = false): Tensor {
  return reduceRaw('argmin', 'argmin', x, plan('argmin', x, axis, keepdim));
}

/** Variance over axes with Bessel's correction by default (PyTorch's `correction=1`). */
export const variance = defineOp('var', {
  forward: (ctx, x: Tensor, axes?: Axes, keepdim: boolean = false, correction: number = 1) => {
    const p = plan('var', x, axes, keepdim);
    ctx.save(p);
    return reduceRaw('var', 'var', x, p, correction);
  },
  backward: ({ args: [x, , , correction], saved }, g) => {
    const R = x.size / Math.max(sizeOf(saved.outShape), 1);
    const m = reduceRaw('var.backward', 'sum', x, { ...saved, outShape: saved.keepShape });
    const gFull = spread(g, saved, x.shape);
    const out = map(
      'var.backward',
      'a * 2.0 * (b - c * alpha) * beta',
      [gFull, x, m],
      1 / R,
      1 / (R - (correction ?? 1)),
    );
    m.dispose();
    gFull.dispose();
    return [out];
  },
});

/** Standard deviation: sqrt of `variance` (composite; its intermediate is freed by the enclosing scope). */
export const std = (x: Tensor, axes?: Axes, keepdim = false, correction = 1) =>
  sqrt(variance(x, axes, keepdim, correction));

/**
 * log(sum(exp(x))) over axes, computed stably: shifted by the maximum, except that an infinite maximum
 * shifts by 0 (as PyTorch does), so [inf, 1] gives inf and all -inf gives -inf instead of NaN.
 */
export const logsumexp = defineOp('logsumexp', {
  forward: (ctx, x: Tensor, axes?: Axes, keepdim: boolean = false) => {
    const p = plan('logsumexp', x, axes, keepdim);
    ctx.save(p);
    const mxRaw = reduceRaw('logsumexp', 'max', x, { ...p, outShape: p.keepShape });
    const mx = map('logsumexp', 'select(a, 0.0, !isfinite_(a) && !isnan_(a))', [mxRaw]);
    mxRaw.dispose();
    const e = map('logsumexp', 'exp(a - b)', [x, mx]);
    const s = reduceRaw('logsumexp', 'sum', e, p);
    const mxOut = reshape(mx, p.outShape);
    const out = map('logsumexp', 'log(a) + b', [s, mxOut]);
    for (const t of [mx, e, s, mxOut]) t.dispose();
    return out;
  },
  backward: ({ args: [x], outputs: [y], saved }, g) => {
    const yFull = spread(y!, saved, x.shape);
    const gFull = spread(g, saved, x.shape);
    const out = map('logsumexp.backward', 'a * exp(b - c)', [gFull, x, yFull]);
    yFull.dispose();
    gFull.dispose();
    return [out];
  },
});
