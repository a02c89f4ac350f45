import {
  blockSumKernel,
  maxPoolBackwardKernel,
  maxPoolKernel,
  resampleGrid,
  resampleKernel,
  upsampleNearestKernel,
} from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { formatShape } from '../tensor/shape.js';
import { type Tensor, isFloatDType } from '../tensor/tensor.js';
import { tensor } from '../forward/creation.js';
import { emptyTensor, floatResult, launch } from '../forward/launch.js';
import { matmul } from './matmul.js';
import { reshape, transpose } from './shape.js';

/**
 * Linear resampling along one axis: output position o reads `taps` input positions index[o*taps + t] with
 * weights weight[o*taps + t]. Interpolation and average pooling are separable products of two of these.
 */
export interface Taps {
  inSize: number;
  outSize: number;
  taps: number;
  index: Int32Array;
  weight: Float32Array;
}

/** Builds a tap table from per-output lists of (index, weight). */
function tapTable(inSize: number, outSize: number, lists: [number, number][][]): Taps {
  const taps = Math.max(1, ...lists.map((l) => l.length));
  const index = new Int32Array(outSize * taps);
  const weight = new Float32Array(outSize * taps);
  lists.forEach((l, o) =>
    l.forEach(([i, w], t) => {
      index[o * taps + t] = i;
      weight[o * taps + t] = w;
    }),
  );
  return { inSize, outSize, taps, index, weight };
}

/** The table as a dense [out, in] matrix (summing repeated indices), for the backward pass. */
function denseMatrix(t: Taps): Float32Array {
  const m = new Float32Array(t.outSize * t.inSize);
  for (let o = 0; o < t.outSize; o++) {
    for (let k = 0; k < t.taps; k++) m[o * t.inSize + t.index[o * t.taps + k]!]! += t.weight[o * t.taps + k]!;
  }
  return m;
}

const TAPS_GATHER_LIMIT = 4;

/**
 * k when the table is nearest-neighbour upsampling by a whole factor k (output o reads input floor(o / k) with
 * weight 1: interpolate's 'nearest' at an integer scale), else null.
 */
function wholeNearestFactor(t: Taps): number | null {
  const k = t.outSize / t.inSize;
  if (t.taps !== 1 || !Number.isInteger(k) || k < 1) return null;
  for (let o = 0; o < t.outSize; o++) if (t.index[o] !== Math.floor(o / k) || t.weight[o] !== 1) return null;
  return k;
}

/**
 * The factor down when the tables upsample float32 rows of a multiple of 4 by a whole factor down and twice across
 * (Upsample2D's 2x), which run on dedicated kernels forward and backward; else null.
 */
function nearestTwiceAcross(rows: Taps, cols: Taps, dtype: string): number | null {
  const fy = wholeNearestFactor(rows);
  return fy !== null && wholeNearestFactor(cols) === 2 && cols.inSize % 4 === 0 && dtype === 'float32' ? fy : null;
}

/** Applies row and column tables to x [..., H, W] (gather kernel for short tables, dense matmuls otherwise). */
function applyTables(op: string, x: Tensor, rows: Taps, cols: Taps): Tensor {
  const [H, W] = x.shape.slice(-2) as [number, number];
  const lead = x.shape.slice(0, -2);
  const planes = x.size / Math.max(H * W, 1);
  const outShape = [...lead, rows.outSize, cols.outSize];
  const fy = nearestTwiceAcross(rows, cols, x.dtype);
  if (fy !== null) {
    const out = emptyTensor(outShape, x.dtype, op);
    if (out.size > 0)
      launch(upsampleNearestKernel(fy), [x], [out], { n: x.size / 4, W4: W / 4 }, resampleGrid(x.size / 4));
    return out;
  }
  if (rows.taps <= TAPS_GATHER_LIMIT && cols.taps <= TAPS_GATHER_LIMIT) {
    const taps = Math.max(rows.taps, cols.taps);
    // Both tables need the same tap count: pad the shorter one with zero-weight taps.
    const widen = (t: Taps): Taps =>
      t.taps === taps
        ? t
        : tapTable(
            t.inSize,
            t.outSize,
            Array.from({ length: t.outSize }, (_, o) =>
              Array.from(
                { length: taps },
                (_, k) =>
                  (k < t.taps ? [t.index[o * t.taps + k]!, t.weight[o * t.taps + k]!] : [0, 0]) as [number, number],
              ),
            ),
          );
    const r = widen(rows);
    const c = widen(cols);
    const out = emptyTensor(outShape, x.dtype, op);
    if (out.size === 0) return out;
    const tables = [
      tensor(r.index, [r.index.length], 'int32'),
      tensor(r.weight, [r.weight.length]),
      tensor(c.index, [c.index.length], 'int32'),
      tensor(c.weight, [c.weight.length]),
    ];
    launch(
      resampleKernel(taps),
      [x, ...tables],
      [out],
      { n: out.size, H, W, Ho: rows.outSize, Wo: cols.outSize },
      resampleGrid(out.size),
    );
    for (const t of tables) t.dispose();
    return out;
  }
  const ah = tensor(denseMatrix(rows), [rows.outSize, H]);
  const aw = tensor(denseMatrix(cols), [cols.outSize, W]);
  const planesView = reshape(x, [planes, H, W]);
  const y = matmul(matmul(ah, planesView), transpose(aw));
  return reshape(y, outShape);
}

/** Separable linear resampling as one op; its backward applies the transposed (dense) tables. */
const resample2d = defineOp('resample2d', {
  forward: (_ctx, x: Tensor, rows: Taps, cols: Taps, op: string = 'resample2d') => {
    if (x.rank < 2 || !isFloatDType(x.dtype))
      throw new Error(`${op}: expected a float tensor [..., H, W], got ${formatShape(x.shape)}`);
    const [H, W] = x.shape.slice(-2) as [number, number];
    if (H !== rows.inSize || W !== cols.inSize)
      throw new Error(`${op}: tables for ${rows.inSize}x${cols.inSize} applied to ${formatShape(x.shape)}`);
    return applyTables(op, x, rows, cols);
  },
  backward: ({ args: [x, rows, cols] }, g) => {
    const [H, W] = x.shape.slice(-2) as [number, number];
    const planes = x.size / Math.max(H * W, 1);
    const fy = nearestTwiceAcross(rows, cols, g.dtype);
    if (fy !== null) {
      const gx = emptyTensor(x.shape, g.dtype, 'resample2d.backward');
      if (gx.size > 0) launch(blockSumKernel(fy), [g], [gx], { n: gx.size / 4, W4: W / 4 }, resampleGrid(gx.size / 4));
      return [gx];
    }
    const ahT = transpose(tensor(denseMatrix(rows), [rows.outSize, H]));
    const aw = tensor(denseMatrix(cols), [cols.outSize, W]);
    const gx = matmul(matmul(ahT, reshape(g, [planes, rows.outSize, cols.outSize])), aw);
    return [reshape(gx, x.shape)];
  },
});

// ---------------------------------------------------------------- interpolation

export type InterpolateMode = 'nearest' | 'bilinear' | 'bicubic';

export interface InterpolateOptions {
  size?: readonly [number, number];
  scaleFactor?: number | readonly [number, number];
  mode?: InterpolateMode;
  /** Bilinear/bicubic only (PyTorch's align_corners; default false). */
  alignCorners?: boolean;
}

/** PyTorch's source-coordinate scale: in/out, or 1/scale_factor when a scale factor was given. */
function coordScale(inSize: number, outSize: number, alignCorners: boolean, scaleFactor?: number): number {
  if (alignCorners) return outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  return scaleFactor !== undefined ? 1 / scaleFactor : inSize / outSize;
}

/** Cubic convolution weights (Keys, A = -0.75, as PyTorch) for offset t in [0, 1). */
function cubicWeights(t: number): [number, number, number, number] {
  const A = -0.75;
  const near = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const far = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

function interpolateTaps(
  mode: InterpolateMode,
  inSize: number,
  outSize: number,
  alignCorners: boolean,
  scaleFactor?: number,
): Taps {
  const scale = coordScale(inSize, outSize, alignCorners, scaleFactor);
  const clampIdx = (i: number) => Math.min(Math.max(i, 0), inSize - 1);
  const lists: [number, number][][] = [];
  for (let o = 0; o < outSize; o++) {
    if (mode === 'nearest') {
      lists.push([
        [Math.min(Math.floor(o * (scaleFactor !== undefined ? 1 / scaleFactor : inSize / outSize)), inSize - 1), 1],
      ]);
      continue;
    }
    const raw = alignCorners ? o * scale : (o + 0.5) * scale - 0.5;
    if (mode === 'bilinear') {
      const src = Math.max(raw, 0);
      const i0 = Math.min(Math.floor(src), inSize - 1);
      const i1 = Math.min(i0 + 1, inSize - 1);
      const l = src - i0;
      lists.push([
        [i0, 1 - l],
        [i1, l],
      ]);
    } else {
      const i = Math.floor(raw);
      const w = cubicWeights(raw - i);
      lists.push(w.map((wk, k) => [clampIdx(i - 1 + k), wk] as [number, number]));
    }
  }
  return tapTable(inSize, outSize, lists);
}

/**
 * Resizes x [N, C, H, W] as torch.nn.functional.interpolate: 'nearest' (PyTorch's floor rule), 'bilinear'
 * and 'bicubic' (A = -0.75, clamped taps) with align_corners true/false, to `size` or by `scaleFactor`.
 */
export function interpolate(x: Tensor, options: InterpolateOptions): Tensor {
  const op = 'interpolate';
  if (x.rank !== 4) throw new Error(`${op}: expected [N, C, H, W], got ${formatShape(x.shape)}`);
  const mode = options.mode ?? 'nearest';
  const [H, W] = x.shape.slice(2) as [number, number];
  if ((options.size === undefined) === (options.scaleFactor === undefined))
    throw new Error(`${op}: give exactly one of size and scaleFactor`);
  if (mode === 'nearest' && options.alignCorners)
    throw new Error(`${op}: alignCorners only applies to bilinear and bicubic`);
  const sf =
    options.scaleFactor === undefined
      ? undefined
      : typeof options.scaleFactor === 'number'
        ? [options.scaleFactor, options.scaleFactor]
        : options.scaleFactor;
  const [Ho, Wo] = options.size ?? [Math.floor(H * sf![0]!), Math.floor(W * sf![1]!)];
  if (!(Ho! >= 1 && Wo! >= 1)) throw new Error(`${op}: output size ${Ho}x${Wo} of ${formatShape(x.shape)} is empty`);
  const align = options.alignCorners ?? false;
  const rows = interpolateTaps(mode, H, Ho!, align, sf?.[0]);
  const cols = interpolateTaps(mode, W, Wo!, align, sf?.[1]);
  return resample2d(x, rows, cols, op);
}

/** Nearest-neighbour 2x upsampling (the UNet's). */
export const upsampleNearest2x = (x: Tensor) => interpolate(x, { scaleFactor: 2, mode: 'nearest' });

// ---------------------------------------------------------------- average pooling

type Pair = number | readonly [number, number];
const pair = (v: Pair | undefined, d: number): [number, number] =>
  v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : [v[0], v[1]];

/** PyTorch's pooled output length, with ceil mode's rule that the last window must start inside the input. */
function pooledSize(inSize: number, k: number, s: number, p: number, d: number, ceil: boolean): number {
  const span = inSize + 2 * p - d * (k - 1) - 1;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= inSize + p) out--;
  return out;
}

function avgPoolTaps(inSize: number, k: number, s: number, p: number, ceil: boolean, countIncludePad: boolean): Taps {
  const outSize = pooledSize(inSize, k, s, p, 1, ceil);
  const lists: [number, number][][] = [];
  for (let o = 0; o < outSize; o++) {
    const start = o * s - p;
    const end = Math.min(start + k, inSize + p);
    const lo = Math.max(start, 0);
    const hi = Math.min(end, inSize);
    const divisor = countIncludePad ? end - start : hi - lo;
    const l: [number, number][] = [];
    for (let i = lo; i < hi; i++) l.push([i, 1 / divisor]);
    lists.push(l.length ? l : [[0, 0]]);
  }
  return tapTable(inSize, outSize, lists);
}

export interface AvgPool2dOptions {
  kernelSize: Pair;
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
  countIncludePad?: boolean;
}

/** Average pooling over [N, C, H, W] (PyTorch semantics, including ceil mode and count_include_pad). */
export function avgPool2d(x: Tensor, options: AvgPool2dOptions): Tensor {
  const op = 'avgPool2d';
  if (x.rank !== 4) throw new Error(`${op}: expected [N, C, H, W], got ${formatShape(x.shape)}`);
  const [kh, kw] = pair(options.kernelSize, 1);
  const [sh, sw] = pair(options.stride ?? options.kernelSize, 1);
  const [ph, pw] = pair(options.padding, 0);
  if (ph > kh / 2 || pw > kw / 2)
    throw new Error(`${op}: padding [${ph}, ${pw}] must be at most half the kernel [${kh}, ${kw}]`);
  const [H, W] = x.shape.slice(2) as [number, number];
  const ceil = options.ceilMode ?? false;
  const include = options.countIncludePad ?? true;
  return resample2d(x, avgPoolTaps(H, kh, sh, ph, ceil, include), avgPoolTaps(W, kw, sw, pw, ceil, include), op);
}

function adaptiveTaps(inSize: number, outSize: number): Taps {
  const lists: [number, number][][] = [];
  for (let o = 0; o < outSize; o++) {
    const start = Math.floor((o * inSize) / outSize);
    const end = Math.ceil(((o + 1) * inSize) / outSize);
    const l: [number, number][] = [];
    for (let i = start; i < end; i++) l.push([i, 1 / (end - start)]);
    lists.push(l);
  }
  return tapTable(inSize, outSize, lists);
}

/** Adaptive average pooling to `outputSize` (PyTorch's bins: floor(i*H/out) .. ceil((i+1)*H/out)). */
export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  const op = 'adaptiveAvgPool2d';
  if (x.rank !== 4) throw new Error(`${op}: expected [N, C, H, W], got ${formatShape(x.shape)}`);
  const [oh, ow] = pair(outputSize, 1);
  const [H, W] = x.shape.slice(2) as [number, number];
  return resample2d(x, adaptiveTaps(H, oh), adaptiveTaps(W, ow), op);
}

// ---------------------------------------------------------------- max pooling

export interface MaxPool2dOptions {
  kernelSize: Pair;
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
}

/** Max pooling over [N, C, H, W]; the gradient goes to the first maximal element of each window (PyTorch). */
export const maxPool2d = defineOp('max_pool2d', {
  forward: (ctx, x: Tensor, options: MaxPool2dOptions) => {
    const op = 'maxPool2d';
    if (x.rank !== 4) throw new Error(`${op}: expected [N, C, H, W], got ${formatShape(x.shape)}`);
    const [kh, kw] = pair(options.kernelSize, 1);
    const [sh, sw] = pair(options.stride ?? options.kernelSize, 1);
    const [ph, pw] = pair(options.padding, 0);
    const [dh, dw] = pair(options.dilation, 1);
    if (ph > kh / 2 || pw > kw / 2)
      throw new Error(`${op}: padding [${ph}, ${pw}] must be at most half the kernel [${kh}, ${kw}]`);
    const [N, C, H, W] = x.shape as [number, number, number, number];
    const ceil = options.ceilMode ?? false;
    const Ho = pooledSize(H, kh, sh, ph, dh, ceil);
    const Wo = pooledSize(W, kw, sw, pw, dw, ceil);
    if (Ho < 1 || Wo < 1) throw new Error(`${op}: window ${kh}x${kw} does not fit ${formatShape(x.shape)}`);
    const g = { kh, kw, sh, sw, ph, pw, dh, dw };
    const out = emptyTensor([N, C, Ho, Wo], floatResult(op, [x]), op);
    const idx = emptyTensor([N, C, Ho, Wo], 'int32', op);
    if (out.size > 0) launch(maxPoolKernel(g), [x], [out, idx], { n: out.size, H, W, Ho, Wo }, resampleGrid(out.size));
    ctx.save({ idx, g });
    return out;
  },
  backward: ({ args: [x], saved }, grad) => {
    const [, , H, W] = x.shape as [number, number, number, number];
    const [Ho, Wo] = grad.shape.slice(2) as [number, number];
    const dx = emptyTensor(x.shape, x.dtype, 'maxPool2d.backward');
    if (dx.size > 0)
      launch(
        maxPoolBackwardKernel(saved.g),
        [grad, saved.idx],
        [dx],
        { n: dx.size, H, W, Ho, Wo },
        resampleGrid(dx.size),
      );
    return [dx];
  },
});
