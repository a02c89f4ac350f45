import { type ReduceOp, chooseReduceMode, reduceGrid, reduceKernel } from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { formatShape, normalizeAxes, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { map, sqrt } from './elementwise.js';
import { serialReduce } from './integer.js';
import { emptyTensor, floatResult, launch } from './launch.js';
import { expand, permute, reshape } from './shape.js';

type Axes = number | readonly number[] | undefined;

interface Plan {
  axes: number[];
  outShape: number[];
  keepShape: number[];
}

function plan(op: string, x: Tensor, axes: Axes, keepdim: boolean): Plan {
  const all = normalizeAxes(op, axes, x.rank);
  const keepShape = x.shape.map((d, i) => (all.includes(i) ? 1 : d));
  const outShape = keepdim ? keepShape : x.shape.filter((_, i) => !all.includes(i));
  return { axes: all, outShape, keepShape };
}

/**
 * Runs a reduction kernel over `axes`. Axes that form one contiguous block are reduced in place as the
 * middle of an [O, R, I] view; any other set is first permuted to the end.
 */
function reduceRaw(op: string, kind: ReduceOp, x: Tensor, p: Plan, correction = 0): Tensor {
  const dtype = floatResult(op, [x]);
  const out = emptyTensor(p.outShape, kind === 'argmax' || kind === 'argmin' ? 'int32' : dtype, op);
  const reduced = p.axes.filter((a) => x.shape[a] !== 1);
  const R = sizeOf(p.axes.map((a) => x.shape[a]!));
  if (R === 0 && kind !== 'sum') throw new Error(`${op}: cannot reduce over an empty dimension (shape ${formatShape(x.shape)})`);
  let src = x;
  let O: number;
  let I: number;
  const contiguous = reduced.every((a, i) => i === 0 || a === reduced[i - 1]! + 1);
  if (!contiguous && (kind === 'sum' || kind === 'max' || kind === 'min')) {
    // Decomposable reductions over several runs of axes: reduce the last run in place (which shrinks the
    // tensor), then the rest of the axes; cheaper than permuting the whole input.
    out.dispose();
    let runStart = reduced.length - 1;
    while (runStart > 0 && reduced[runStart - 1] === reduced[runStart]! - 1) runStart--;
    const lastRun = reduced.slice(runStart);
    const partialKeep = x.shape.map((d, i) => (lastRun.includes(i) ? 1 : d));
    const partial = reduceRaw(op, kind, x, { axes: lastRun, outShape: partialKeep, keepShape: partialKeep });
    const result = reduceRaw(op, kind, partial, { ...p, axes: p.axes.filter((a) => !lastRun.includes(a)) });
    partial.dispose();
    return result;
  }
  if (contiguous) {
    const first = reduced[0] ?? x.rank;
    const last = reduced[reduced.length - 1] ?? x.rank - 1;
    O = sizeOf(x.shape.slice(0, first));
    I = sizeOf(x.shape.slice(last + 1));
  } else {
    const kept = x.shape.map((_, i) => i).filter((i) => !reduced.includes(i));
    src = permute(x, [...kept, ...reduced]);
    O = sizeOf(kept.map((i) => x.shape[i]!));
    I = 1;
  }
  if (out.size > 0) {
    const mode = chooseReduceMode(R, I);
    const scale = kind === 'var' ? 1 / Math.max(R - correction, 0) : 1;
    launch(reduceKernel(kind, mode), [src], [out], { O, R, I, scale }, reduceGrid(mode, O, I));
  }
  if (src !== x) src.dispose();
  return out;
}

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
    const out = map('var.backward', 'a * 2.0 * (b - c * alpha) * beta', [gFull, x, m], 1 / R, 1 / (R - (correction ?? 1)));
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

/**
 * Sums a broadcast gradient back to `shape` (the inverse of broadcasting). Returns `g` itself when no
 * reduction is needed.
 */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const s = sum(g, axes, true);
  const out = reshape(s, shape);
  s.dispose();
  return out;
}
