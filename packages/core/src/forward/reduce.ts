import {
  type ReduceOp,
  chooseReduceMode,
  nestedSumGrid,
  nestedSumKernel,
  reduceGrid,
  reduceKernel,
} from '@leffa-webgpu/kernels-wgsl';
import { formatShape, normalizeAxes, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { emptyTensor, floatResult, launch } from './launch.js';
import { permuteCopy } from './layout.js';
import { rowLanes } from './row-lanes.js';

type Axes = number | readonly number[] | undefined;

/** Which axes a reduction removes, and the output shape with and without the kept 1s. */
export interface ReducePlan {
  axes: number[];
  outShape: number[];
  keepShape: number[];
}

export function reducePlan(op: string, x: Tensor, axes: Axes, keepdim: boolean): ReducePlan {
  const all = normalizeAxes(op, axes, x.rank);
  const keepShape = x.shape.map((d, i) => (all.includes(i) ? 1 : d));
  const outShape = keepdim ? keepShape : x.shape.filter((_, i) => !all.includes(i));
  return { axes: all, outShape, keepShape };
}

/**
 * Runs a reduction kernel over `axes`. Axes that form one contiguous block are reduced in place as the
 * middle of an [O, R, I] view; any other set is first permuted to the end.
 */
export function reduceRaw(op: string, kind: ReduceOp, x: Tensor, p: ReducePlan, correction = 0): Tensor {
  const dtype = floatResult(op, [x]);
  const out = emptyTensor(p.outShape, kind === 'argmax' || kind === 'argmin' ? 'int32' : dtype, op);
  const reduced = p.axes.filter((a) => x.shape[a] !== 1);
  const R = sizeOf(p.axes.map((a) => x.shape[a]!));
  if (R === 0 && kind !== 'sum')
    throw new Error(`${op}: cannot reduce over an empty dimension (shape ${formatShape(x.shape)})`);
  let src = x;
  let O: number;
  let I: number;
  const contiguous = reduced.every((a, i) => i === 0 || a === reduced[i - 1]! + 1);
  const decomposable = kind === 'sum' || kind === 'max' || kind === 'min';
  const split = !contiguous && decomposable ? outerSplit(x.shape, reduced) : null;
  if (split) {
    // Reduced axes on both sides of one kept block (a bias gradient over [N, C, H, W]): one dispatch.
    if (out.size > 0) {
      launch(
        reduceKernel(kind, 'outer', rowLanes()),
        [x],
        [out],
        { O: split.O, R: split.A, I: split.I, scale: 1 },
        reduceGrid('outer', split.O, 1),
      );
    }
    return out;
  }
  const nested = !contiguous && kind === 'sum' ? nestedSplit(x.shape, reduced) : null;
  if (nested) {
    // Short inner runs on both sides of one kept block: the two column passes below, in one dispatch.
    if (out.size > 0) launch(nestedSumKernel(), [x], [out], nested, nestedSumGrid(nested.O));
    return out;
  }
  if (!contiguous && decomposable) {
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
    src = permuteCopy(op, x, [...kept, ...reduced]);
    O = sizeOf(kept.map((i) => x.shape[i]!));
    I = 1;
  }
  if (out.size > 0) {
    const mode = chooseReduceMode(R, I);
    const scale = kind === 'var' ? 1 / Math.max(R - correction, 0) : 1;
    launch(reduceKernel(kind, mode, rowLanes()), [src], [out], { O, R, I, scale }, reduceGrid(mode, O, I));
  }
  if (src !== x) src.dispose();
  return out;
}

/**
 * [A, O, I] sizes when the reduced axes (sizes above 1) lie on both sides of one block of kept axes, and a
 * workgroup per output has enough to do: inner runs of at least 64 values (its width; shorter runs measured
 * slower than two steps) and at least 16 outputs, or at most 64K values each (few outputs over long runs go
 * faster in two steps, whose first step has a workgroup per (outer index, output)).
 */
function outerSplit(shape: readonly number[], reduced: readonly number[]): { A: number; O: number; I: number } | null {
  const s = keptBlock(shape, reduced);
  if (!s || s.A === 1 || s.I < 64) return null;
  return s.O >= 16 || s.A * s.I <= 65536 ? s : null;
}

/**
 * [A, O, I] sizes for nestedSumKernel where the two-pass path would take two column passes (inner runs under
 * 64, a second pass over more than one output or under 128 runs), with at most 64K values per output.
 */
function nestedSplit(shape: readonly number[], reduced: readonly number[]): { A: number; O: number; I: number } | null {
  const s = keptBlock(shape, reduced);
  if (!s || s.A === 1 || s.I === 1 || s.I >= 64 || s.A * s.I > 65536) return null;
  return s.O > 1 || s.A < 128 ? s : null;
}

/** [A, O, I] sizes when the reduced axes (sizes above 1) lie on both sides of one block of kept axes. */
function keptBlock(shape: readonly number[], reduced: readonly number[]): { A: number; O: number; I: number } | null {
  const kept = shape.map((d, i) => (d !== 1 && !reduced.includes(i) ? i : -1)).filter((i) => i >= 0);
  if (kept.length === 0) return null;
  const first = kept[0]!;
  const last = kept[kept.length - 1]!;
  if (reduced.some((a) => a > first && a < last)) return null;
  return {
    A: sizeOf(shape.slice(0, first)),
    O: sizeOf(shape.slice(first, last + 1)),
    I: sizeOf(shape.slice(last + 1)),
  };
}

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
  const s = reduceRaw('sum', 'sum', g, reducePlan('sum', g, axes, true));
  const out = s.alias(shape);
  s.dispose();
  return out;
}
