import { copyGrid, gatherKernel } from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { contiguousStrides, formatShape, inferShape, normalizeAxis, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { zeros } from '../forward/creation.js';
import { emptyTensor, launch } from '../forward/launch.js';
import { checkRank, gatherRuns, gatherStrided, permuteCopy, scatterStrided } from '../forward/layout.js';
import { sumTo } from '../forward/reduce.js';

/*
 * Layout ops. Tensors are contiguous, so reshape/flatten/squeeze/unsqueeze are free views and everything
 * else (permute, expand, slice, pad, flip, concat) copies through one strided gather/scatter kernel.
 */

// ---------------------------------------------------------------- views

export const reshape = defineOp('reshape', {
  forward: (_ctx, x: Tensor, shape: readonly number[]) => x.alias(inferShape('reshape', x.shape, shape)),
  backward: ({ args: [x] }, g) => [g.alias(x.shape)],
});

/** Flattens dims start..end (inclusive) into one. */
export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  if (x.rank === 0) return reshape(x, [1]);
  const s = normalizeAxis('flatten', start, x.rank);
  const e = normalizeAxis('flatten', end, x.rank);
  return reshape(x, [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

/** Inserts a size-1 dim at `axis` (which may be rank, to append). */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normalizeAxis('unsqueeze', axis, x.rank + 1);
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

/** Removes size-1 dims (all of them, or the given ones). */
export function squeeze(x: Tensor, axes?: number | readonly number[]): Tensor {
  const list =
    axes === undefined
      ? undefined
      : (typeof axes === 'number' ? [axes] : axes).map((a) => normalizeAxis('squeeze', a, x.rank));
  return reshape(
    x,
    x.shape.filter((d, i) => d !== 1 || (list !== undefined && !list.includes(i))),
  );
}

// ---------------------------------------------------------------- copies

export const permute: (x: Tensor, dims: readonly number[]) => Tensor = defineOp('permute', {
  forward: (_ctx, x: Tensor, dims: readonly number[]) => permuteCopy('permute', x, dims),
  backward: ({ args: [x, dims] }, g) => {
    const inverse = new Array<number>(x.rank);
    dims.forEach((a, i) => (inverse[normalizeAxis('permute', a, x.rank)] = i));
    return [permute(g, inverse)];
  },
});

/** Swaps two axes. */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const dims = x.shape.map((_, i) => i);
  const i = normalizeAxis('transpose', a, x.rank);
  const j = normalizeAxis('transpose', b, x.rank);
  [dims[i], dims[j]] = [dims[j]!, dims[i]!];
  return permute(x, dims);
}

/** Broadcasts to `shape` (sizes of -1 keep the input's size), materialising the copy. */
export const expand = defineOp('expand', {
  forward: (_ctx, x: Tensor, shape: readonly number[]) => {
    const lead = shape.length - x.rank;
    if (lead < 0)
      throw new Error(`expand: target ${formatShape(shape)} has fewer dims than input ${formatShape(x.shape)}`);
    const strides = contiguousStrides(x.shape);
    const outShape = shape.map((d, i) => (i >= lead && d === -1 ? x.shape[i - lead]! : d));
    const outStrides = outShape.map((d, i) => {
      if (i < lead) return 0;
      const s = x.shape[i - lead]!;
      if (s === d) return strides[i - lead]!;
      if (s === 1) return 0;
      throw new Error(
        `expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)} (dim ${i} has size ${s}, expected 1 or ${d})`,
      );
    });
    return gatherStrided('expand', x, outShape, outStrides);
  },
  backward: ({ args: [x] }, g) => [sumTo(g, x.shape)],
});

export type SliceSpec = { start?: number; end?: number; step?: number } | null | undefined;

/** Python-style bounds: negatives count from the end and out-of-range values clamp. */
function resolveSlice(spec: SliceSpec, size: number): { start: number; count: number; step: number } {
  const step = spec?.step ?? 1;
  if (!Number.isInteger(step) || step <= 0) throw new Error(`slice: step must be a non-zero integer, got ${step}`);
  const clampIndex = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, 0), size);
  const start = clampIndex(spec?.start ?? 0);
  const end = clampIndex(spec?.end ?? size);
  return { start, count: Math.max(0, Math.ceil((end - start) / step)), step };
}

const sliceOp = defineOp('slice', {
  forward: (_ctx, x: Tensor, specs: readonly SliceSpec[]) => {
    if (specs.length > x.rank) throw new Error(`slice: ${specs.length} specs for a tensor of rank ${x.rank}`);
    const strides = contiguousStrides(x.shape);
    let offset = 0;
    const outShape: number[] = [];
    const outStrides: number[] = [];
    x.shape.forEach((size, d) => {
      const r = resolveSlice(specs[d], size);
      offset += r.start * strides[d]!;
      outShape.push(r.count);
      outStrides.push(r.step * strides[d]!);
    });
    return gatherStrided('slice', x, outShape, outStrides, offset);
  },
  backward: ({ args: [x, specs] }, g) => {
    const strides = contiguousStrides(x.shape);
    let offset = 0;
    const outStrides = x.shape.map((size, d) => {
      const r = resolveSlice(specs[d], size);
      offset += r.start * strides[d]!;
      return r.step * strides[d]!;
    });
    const gx = zeros(x.shape);
    scatterStrided(g, gx, outStrides, offset);
    return [gx];
  },
});

/**
 * Python's slice.indices for a negative step: the first and last index taken and how many (empty when
 * count is 0). Bounds clamp to [-1, size - 1]; start defaults to the end, end to before the beginning.
 */
function resolveNegativeSlice(
  spec: NonNullable<SliceSpec>,
  size: number,
): { first: number; last: number; count: number; step: number } {
  const step = spec.step!;
  if (!Number.isInteger(step)) throw new Error(`slice: step must be an integer, got ${step}`);
  const clampIndex = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, -1), size - 1);
  const first = spec.start === undefined ? size - 1 : clampIndex(spec.start);
  const end = spec.end === undefined ? -1 : clampIndex(spec.end);
  const count = first > end ? Math.floor((first - end - 1) / -step) + 1 : 0;
  return { first, last: first + (count - 1) * step, count, step };
}

/**
 * Multi-axis slice: one spec per leading axis ({start, end, step}; null keeps the whole axis), with Python's
 * semantics: negative bounds count from the end, out-of-range bounds clamp, and a negative step walks
 * backwards (x[::-1], x[5:1:-2]; PyTorch refuses negative steps, numpy and Python lists take them). A negative
 * step is the positive-step slice of the same elements, flipped.
 */
export function slice(x: Tensor, specs: readonly SliceSpec[]): Tensor {
  if (!specs.some((s) => (s?.step ?? 1) < 0)) return sliceOp(x, specs);
  if (specs.length > x.rank) throw new Error(`slice: ${specs.length} specs for a tensor of rank ${x.rank}`);
  const flipAxes: number[] = [];
  const forward = specs.map((s, d): SliceSpec => {
    if ((s?.step ?? 1) > 0) return s;
    const r = resolveNegativeSlice(s!, x.shape[d]!);
    flipAxes.push(d);
    return r.count === 0 ? { start: 0, end: 0 } : { start: r.last, end: r.first + 1, step: -r.step };
  });
  const sliced = sliceOp(x, forward);
  const out = flip(sliced, flipAxes);
  if (!out.requiresGrad) sliced.dispose();
  return out;
}

/** `length` entries of `axis` starting at `start`. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normalizeAxis('narrow', axis, x.rank);
  if (start < 0 || start + length > x.shape[a]!) {
    throw new Error(`narrow: range [${start}, ${start + length}) is outside axis ${axis} of size ${x.shape[a]}`);
  }
  const specs: SliceSpec[] = x.shape.map(() => null);
  specs[a] = { start, end: start + length };
  return slice(x, specs);
}

/** Constant padding in PyTorch F.pad order: [lastLeft, lastRight, prevLeft, prevRight, ...]. */
export const pad = defineOp('pad', {
  forward: (_ctx, x: Tensor, pads: readonly number[], value: number = 0) => {
    if (pads.length % 2 !== 0 || pads.length / 2 > x.rank) {
      throw new Error(
        `pad: expected an even number of pads (at most ${2 * x.rank}) for ${formatShape(x.shape)}, got ${pads.length}`,
      );
    }
    if (pads.some((p) => p < 0 || !Number.isInteger(p)))
      throw new Error(`pad: pads must be integers >= 0, got [${pads.join(', ')}]`);
    const lo = x.shape.map(() => 0);
    const outShape = [...x.shape];
    for (let k = 0; k < pads.length / 2; k++) {
      const d = x.rank - 1 - k;
      lo[d] = pads[2 * k]!;
      outShape[d] = x.shape[d]! + pads[2 * k]! + pads[2 * k + 1]!;
    }
    checkRank('pad', x.rank);
    const out = emptyTensor(outShape, x.dtype, 'pad');
    if (out.size === 0) return out;
    const fill = x.dtype === 'int32' ? value | 0 : new Uint32Array(new Float32Array([value]).buffer)[0]!;
    const runs = gatherRuns(outShape, out.size);
    const n = runs?.n ?? out.size;
    launch(
      gatherKernel(Math.max(1, x.rank), true, false, runs !== null),
      [x],
      [out],
      {
        n,
        offset: 0,
        fill: fill >>> 0,
        ...(runs ? { runsW: runs.runsW } : {}),
        shape: outShape,
        stride: contiguousStrides(x.shape),
        lo,
        srcShape: [...x.shape],
      },
      copyGrid(n),
    );
    return out;
  },
  backward: ({ args: [x, pads] }, g) => {
    const specs: SliceSpec[] = x.shape.map(() => null);
    for (let k = 0; k < pads.length / 2; k++) {
      const d = x.rank - 1 - k;
      specs[d] = { start: pads[2 * k]!, end: pads[2 * k]! + x.shape[d]! };
    }
    return [slice(g, specs)];
  },
});

/** Reverses the given axes. */
export const flip: (x: Tensor, axes: readonly number[]) => Tensor = defineOp('flip', {
  forward: (_ctx, x: Tensor, axes: readonly number[]) => {
    const list = axes.map((a) => normalizeAxis('flip', a, x.rank));
    const strides = contiguousStrides(x.shape);
    let offset = 0;
    const outStrides = strides.map((s, d) => {
      if (!list.includes(d)) return s;
      offset += (x.shape[d]! - 1) * s;
      return -s;
    });
    return gatherStrided('flip', x, [...x.shape], outStrides, offset);
  },
  backward: ({ args: [, axes] }, g) => [flip(g, axes)],
});

/** Joins tensors along an existing axis. */
export const concat = defineOp('concat', {
  forward: (_ctx, xs: readonly Tensor[], axis: number = 0) => {
    if (xs.length === 0) throw new Error('concat: needs at least one tensor');
    const first = xs[0]!;
    const a = normalizeAxis('concat', axis, first.rank);
    for (const [i, t] of xs.entries()) {
      const ok =
        t.rank === first.rank && t.dtype === first.dtype && t.shape.every((d, k) => k === a || d === first.shape[k]);
      if (!ok) {
        throw new Error(
          `concat: tensor ${i} has shape ${formatShape(t.shape)} (${t.dtype}), expected ${formatShape(first.shape)} (${first.dtype}) except along axis ${axis}`,
        );
      }
    }
    const outShape = [...first.shape];
    outShape[a] = xs.reduce((s, t) => s + t.shape[a]!, 0);
    const out = emptyTensor(outShape, first.dtype, 'concat');
    const strides = contiguousStrides(outShape);
    let start = 0;
    for (const t of xs) {
      scatterStrided(t, out, strides, start * strides[a]!);
      start += t.shape[a]!;
    }
    return out;
  },
  backward: ({ args: [xs, axis], needsGrad }, g) => {
    const a = normalizeAxis('concat', axis ?? 0, g.rank);
    let start = 0;
    return xs.map((t, i) => {
      const s = start;
      start += t.shape[a]!;
      return needsGrad[i] ? narrow(g, a, s, t.shape[a]!) : null;
    });
  },
});

/** Joins tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('stack: needs at least one tensor');
  const a = normalizeAxis('stack', axis, xs[0]!.rank + 1);
  return concat(
    xs.map((t) => unsqueeze(t, a)),
    a,
  );
}

/** Splits along `axis` into pieces of the given sizes (or equal pieces of `size`); one kernel per piece. */
export const split = defineOp('split', {
  forward: (_ctx, x: Tensor, sizes: number | readonly number[], axis: number = 0): Tensor[] => {
    const a = normalizeAxis('split', axis, x.rank);
    const n = x.shape[a]!;
    const list =
      typeof sizes === 'number'
        ? Array.from({ length: Math.ceil(n / sizes) }, (_, i) => Math.min(sizes, n - i * sizes))
        : sizes;
    if (list.reduce((s, v) => s + v, 0) !== n) {
      throw new Error(
        `split: sizes [${list.join(', ')}] do not add up to ${n} (axis ${axis} of ${formatShape(x.shape)})`,
      );
    }
    let start = 0;
    return list.map((len) => {
      const piece = narrow(x, a, start, len);
      start += len;
      return piece;
    });
  },
  backward: ({ args: [, , axis] }, ...grads) => [concat(grads, axis ?? 0)],
});

/** Splits into `chunks` near-equal pieces along `axis` (PyTorch's chunk). */
export function chunk(x: Tensor, chunks: number, axis = 0): Tensor[] {
  const n = x.shape[normalizeAxis('chunk', axis, x.rank)]!;
  return split(x, Math.ceil(n / chunks), axis);
}

/** Repeats the tensor along each axis (PyTorch's repeat). */
export function repeat(x: Tensor, times: readonly number[]): Tensor {
  if (times.length < x.rank) throw new Error(`repeat: ${times.length} repeat counts for a tensor of rank ${x.rank}`);
  const lead = times.length - x.rank;
  const padded = [...new Array<number>(lead).fill(1), ...x.shape];
  // Interleave a broadcast axis before each axis, then merge: [t0, s0, t1, s1, ...] -> [t0*s0, t1*s1, ...].
  const viewShape = padded.flatMap((s) => [1, s]);
  const target = padded.flatMap((s, i) => [times[i]!, s]);
  return reshape(
    expand(reshape(x, viewShape), target),
    padded.map((s, i) => s * times[i]!),
  );
}
