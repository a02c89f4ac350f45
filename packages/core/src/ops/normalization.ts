import {
  channelGradCombineKernel,
  channelGradGrid,
  channelGradSumsGrid,
  channelGradSumsKernel,
  chooseChannelSumsMode,
  chooseNormMode,
  groupNormBackwardKernel,
  groupNormForwardKernel,
  layerNormAffineGradKernel,
  layerNormThreadBackwardKernel,
  layerNormThreadForwardKernel,
  normApplyKernel,
  normElementGrid,
  normGradInputKernel,
  normGradSumsKernel,
  type NormRowMode,
  normRowGrid,
  rowMomentsKernel,
} from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { noGrad } from '../autograd/grad-mode.js';
import { formatShape, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { abs, add, leakyRelu, map, mul, rsqrt, sub } from './elementwise.js';
import { zeros } from '../forward/creation.js';
import { emptyTensor, floatResult, launch } from '../forward/launch.js';
import { rowLanes } from '../forward/row-lanes.js';
import { mean, variance } from './reduce.js';
import { reshape } from './shape.js';

/**
 * Where a row normalisation's rows and affine parameters sit in the flat tensor: `rows` contiguous rows of
 * length L; parameter p of element i is (i / inner) % P.
 */
interface RowLayout {
  rows: number;
  L: number;
  inner: number;
  P: number;
}

/**
 * Short rows ('thread' mode) with a parameter per value, if any (LayerNorm's layout): the one-dispatch kernels,
 * forward and backward, cover them.
 */
function layerNormThreadRows(layout: RowLayout, mode: NormRowMode, affine: boolean): boolean {
  return mode === 'thread' && layout.inner === 1 && (!affine || layout.P === layout.L);
}

function rowNormForward(
  op: string,
  x: Tensor,
  layout: RowLayout,
  eps: number,
  weight?: Tensor,
  bias?: Tensor,
  silu = false,
) {
  const stats = emptyTensor([layout.rows, 2], 'float32', op);
  // Statistics stay float32; the output has the inputs' float dtype.
  const y = emptyTensor(x.shape, floatResult(op, [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])]), op);
  if (x.size === 0) return { y, stats };
  const mode = chooseNormMode(layout.rows, layout.L);
  const affine = weight !== undefined;
  if (mode === 'group' && layout.inner > 1) {
    // GroupNorm's long rows: statistics and output in one dispatch (vec4 when channel runs come in fours).
    launch(
      groupNormForwardKernel(affine, silu, layout.inner % 4 === 0, rowLanes()),
      affine ? [x, weight!, bias!] : [x],
      [y, stats],
      { rows: layout.rows, L: layout.L, inner: layout.inner, P: layout.P, eps },
      normRowGrid(layout.rows, mode),
    );
    return { y, stats };
  }
  // vec4 paths when rows (and, for the affine, channel runs) come in fours.
  const vecRows = layout.L % 4 === 0;
  if (layerNormThreadRows(layout, mode, affine) && !silu) {
    // Short rows with a parameter per value (LayerNorm): statistics and output in one dispatch.
    launch(
      layerNormThreadForwardKernel(affine, vecRows),
      affine ? [x, weight!, bias!] : [x],
      [y, stats],
      { rows: layout.rows, L: layout.L, eps },
      normRowGrid(layout.rows, mode),
    );
    return { y, stats };
  }
  launch(
    rowMomentsKernel(mode, vecRows, rowLanes()),
    [x],
    [stats],
    { rows: layout.rows, L: layout.L, eps },
    normRowGrid(layout.rows, mode),
  );
  // vec4 when an invocation's four values share their parameter (inner % 4) or, LayerNorm's per-value affine,
  // have four consecutive ones.
  const lanes = vecRows && affine && layout.inner === 1 && layout.P % 4 === 0;
  const vecApply = (vecRows && layout.inner % 4 === 0) || lanes;
  launch(
    normApplyKernel(affine, silu, vecApply, lanes && layout.inner % 4 !== 0),
    affine ? [x, stats, weight!, bias!] : [x, stats],
    [y],
    { n: x.size, L: layout.L, inner: layout.inner, P: layout.P },
    normElementGrid(vecApply ? x.size / 4 : x.size),
  );
  return { y, stats };
}

/** LayerNorm's backward: row sums and dx, then the affine gradients summed over the leading axes. */
function layerNormBackward(
  x: Tensor,
  g: Tensor,
  stats: Tensor,
  layout: RowLayout,
  weight: Tensor | undefined,
  needs: boolean[],
) {
  const op = 'layerNorm';
  const affine = weight !== undefined;
  const u = { n: x.size, L: layout.L, inner: layout.inner, P: layout.P };
  let dx: Tensor | null = null;
  const mode = chooseNormMode(layout.rows, layout.L);
  if (needs[0] && layerNormThreadRows(layout, mode, affine)) {
    // Short rows (as in the forward): the row sums and dx in one dispatch.
    dx = emptyTensor(x.shape, x.dtype, op);
    launch(
      layerNormThreadBackwardKernel(affine, layout.L % 4 === 0),
      affine ? [x, g, stats, weight] : [x, g, stats],
      [dx],
      { rows: layout.rows, L: layout.L },
      normRowGrid(layout.rows, mode),
    );
  } else if (needs[0]) {
    const sums = emptyTensor([layout.rows, 2], 'float32', op);
    // vec4 when rows and channel runs come in fours (as in the forward).
    const vec = layout.L % 4 === 0 && (!affine || layout.inner % 4 === 0);
    launch(
      normGradSumsKernel(affine, mode, vec, rowLanes()),
      affine ? [x, g, stats, weight] : [x, g, stats],
      [sums],
      { rows: layout.rows, ...u },
      normRowGrid(layout.rows, mode),
    );
    dx = emptyTensor(x.shape, x.dtype, op);
    const lanes = !vec && affine && layout.L % 4 === 0 && layout.inner === 1 && layout.P % 4 === 0;
    launch(
      normGradInputKernel(affine, vec || lanes, false, lanes),
      affine ? [x, g, stats, sums, weight] : [x, g, stats, sums],
      [dx],
      u,
      normElementGrid(vec || lanes ? x.size / 4 : x.size),
    );
  }
  let dw: Tensor | null = null;
  let db: Tensor | null = null;
  if (affine && (needs[1] || needs[2])) {
    // Both in one pass over the rows; xhat is recomputed from the saved statistics rather than stored.
    dw = emptyTensor(weight.shape, 'float32', op);
    db = emptyTensor(weight.shape, floatResult(op, [g]), op);
    if (layout.rows > 0 && layout.L > 0) {
      launch(
        layerNormAffineGradKernel(),
        [x, g, stats],
        [dw, db],
        { rows: layout.rows, P: layout.L },
        channelGradGrid(layout.L),
      );
    } else {
      dw.dispose();
      db.dispose();
      dw = zeros(weight.shape);
      db = zeros(weight.shape);
    }
    if (!needs[1]) {
      dw.dispose();
      dw = null;
    }
    if (!needs[2]) {
      db.dispose();
      db = null;
    }
  }
  return { dx, dw, db };
}

function checkAffine(op: string, weight: Tensor | undefined, bias: Tensor | undefined, shape: readonly number[]): void {
  if ((weight === undefined) !== (bias === undefined)) throw new Error(`${op}: pass both weight and bias, or neither`);
  for (const [name, t] of [
    ['weight', weight],
    ['bias', bias],
  ] as const) {
    if (t && t.shape.join() !== shape.join()) {
      throw new Error(`${op}: ${name} ${formatShape(t.shape)} does not match the expected shape ${formatShape(shape)}`);
    }
  }
}

const affineGrads = (r: { dx: Tensor | null; dw: Tensor | null; db: Tensor | null }, affine: boolean) =>
  affine ? [r.dx, r.dw, r.db] : [r.dx];

/**
 * GroupNorm over x [N, C, ...]: statistics per (image, group of C / groups channels), then a per-channel
 * affine (PyTorch / diffusers semantics; diffusers uses eps 1e-5 in the UNet and 1e-6 in the VAE).
 */
export const groupNorm = defineOp('group_norm', {
  forward: (
    ctx,
    x: Tensor,
    numGroups: number,
    weight?: Tensor,
    bias?: Tensor,
    eps: number = 1e-5,
    activation?: 'silu',
  ) => {
    const op = 'groupNorm';
    if (x.rank < 2) throw new Error(`${op}: input must be [N, C, ...], got ${formatShape(x.shape)}`);
    const [n, c] = x.shape as [number, number];
    if (!Number.isInteger(numGroups) || numGroups < 1 || c % numGroups !== 0) {
      throw new Error(`${op}: ${c} channels of ${formatShape(x.shape)} do not split into ${numGroups} groups`);
    }
    checkAffine(op, weight, bias, [c]);
    const spatial = sizeOf(x.shape.slice(2));
    const layout: RowLayout = {
      rows: n * numGroups,
      L: (c / numGroups) * spatial,
      inner: spatial,
      P: c,
    };
    const { y, stats } = rowNormForward(op, x, layout, eps, weight, bias, activation === 'silu');
    ctx.save({ stats, layout });
    return y;
  },
  backward: ({ args: [x, , weight, bias, , activation], saved, needsGrad }, g) =>
    affineGrads(
      groupNormBackward(x, g, saved.stats, saved.layout, weight, bias, activation === 'silu', [...needsGrad]),
      weight !== undefined,
    ),
});

/**
 * GroupNorm's backward in three passes: sums of gz and gz * xhat per (image, channel) (gz = g, or the gradient
 * through the fused SiLU, recomputed from x rather than stored), which give the affine gradients and the row
 * sums in one small pass, then dx elementwise.
 */
function groupNormBackward(
  x: Tensor,
  g: Tensor,
  stats: Tensor,
  layout: RowLayout,
  weight: Tensor | undefined,
  bias: Tensor | undefined,
  silu: boolean,
  needs: boolean[],
) {
  const op = 'groupNorm.backward';
  const affine = weight !== undefined;
  if (x.size === 0) {
    return {
      dx: needs[0] ? emptyTensor(x.shape, x.dtype, op) : null,
      dw: affine && needs[1] ? zeros(weight.shape) : null,
      db: affine && needs[2] ? zeros(weight.shape) : null,
    };
  }
  const { rows, L, inner, P: C } = layout;
  const segs = x.size / inner;
  const Cg = L / inner;
  const vec = inner % 4 === 0;
  const siluParams = silu && affine ? [weight, bias!] : [];
  const parts = emptyTensor([segs, 2], 'float32', op);
  if (needs[0] && inner >= 512) {
    // Pass 1 and dx in one dispatch (a workgroup per row); pass 2 then only combines the affine gradients.
    // Measured on lavapipe: 1.1-1.9x the three passes from 32x24 up, slower below (fewer workgroups, each
    // walking its channel runs in turn).
    const dx = emptyTensor(x.shape, x.dtype, op);
    launch(
      groupNormBackwardKernel(silu, affine, vec, rowLanes()),
      [x, g, stats, ...(affine ? [weight] : []), ...(silu && affine ? [bias!] : [])],
      [parts, dx],
      { rows, inner, C, Cg },
      normRowGrid(rows),
    );
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (affine && (needs[1] || needs[2])) {
      dw = emptyTensor(weight.shape, 'float32', op);
      db = emptyTensor(weight.shape, 'float32', op);
      launch(
        channelGradCombineKernel(true, false),
        [parts],
        [dw, db],
        { n: C, rows: 0, images: segs / C, C, Cg },
        channelGradGrid(C),
      );
      if (!needs[1]) dw.dispose();
      if (!needs[2]) db.dispose();
    }
    parts.dispose();
    return { dx, dw: needs[1] ? dw : null, db: needs[2] ? db : null };
  }
  const mode = chooseChannelSumsMode(inner, vec);
  launch(
    channelGradSumsKernel(silu, affine, vec, mode, rowLanes()),
    [x, g, stats, ...siluParams],
    [parts],
    { segs, inner, C, Cg },
    channelGradSumsGrid(segs, mode),
  );
  const sums = emptyTensor([rows, 2], 'float32', op);
  const dw = affine ? emptyTensor(weight.shape, 'float32', op) : null;
  const db = affine ? emptyTensor(weight.shape, 'float32', op) : null;
  const n = rows + (affine ? C : 0);
  launch(
    channelGradCombineKernel(affine),
    affine ? [parts, weight] : [parts],
    affine ? [sums, dw!, db!] : [sums],
    { n, rows, images: segs / C, C, Cg },
    channelGradGrid(n),
  );
  parts.dispose();
  let dx: Tensor | null = null;
  if (needs[0]) {
    dx = emptyTensor(x.shape, x.dtype, op);
    const u = { n: x.size, L, inner, P: C };
    launch(
      normGradInputKernel(affine, vec, silu),
      affine ? [x, g, stats, sums, weight, ...(silu ? [bias!] : [])] : [x, g, stats, sums],
      [dx],
      u,
      normElementGrid(vec ? x.size / 4 : x.size),
    );
  }
  sums.dispose();
  if (!needs[1]) dw?.dispose();
  if (!needs[2]) db?.dispose();
  return { dx, dw: needs[1] ? dw : null, db: needs[2] ? db : null };
}

/** GroupNorm followed by SiLU in one pass (the norm -> nonlinearity pair of every diffusers resnet). */
export const groupNormSilu = (x: Tensor, numGroups: number, weight?: Tensor, bias?: Tensor, eps = 1e-5) =>
  groupNorm(x, numGroups, weight, bias, eps, 'silu');

/** LayerNorm over the trailing `normalizedShape` dims with an elementwise affine of that shape. */
export const layerNorm = defineOp('layer_norm', {
  forward: (ctx, x: Tensor, normalizedShape: readonly number[], weight?: Tensor, bias?: Tensor, eps: number = 1e-5) => {
    const op = 'layerNorm';
    const k = normalizedShape.length;
    if (k === 0 || k > x.rank || x.shape.slice(x.rank - k).join() !== normalizedShape.join()) {
      throw new Error(
        `${op}: normalized shape ${formatShape(normalizedShape)} does not match the trailing dims of ${formatShape(x.shape)}`,
      );
    }
    checkAffine(op, weight, bias, normalizedShape);
    const L = sizeOf(normalizedShape);
    const layout: RowLayout = {
      rows: x.size / Math.max(L, 1),
      L,
      inner: 1,
      P: L,
    };
    const { y, stats } = rowNormForward(op, x, layout, eps, weight, bias);
    ctx.save({ stats, layout });
    return y;
  },
  backward: ({ args: [x, , weight], saved, needsGrad }, g) =>
    affineGrads(layerNormBackward(x, g, saved.stats, saved.layout, weight, [...needsGrad]), weight !== undefined),
});

export interface BatchNormOptions {
  /** Batch statistics (and running-stat updates) in training; running statistics in eval. */
  training: boolean;
  /** Running-stat momentum; null gives a cumulative moving average (needs `numBatchesTracked`). */
  momentum?: number | null;
  eps?: number;
  /** Batches seen so far, after this one (used by the cumulative average: factor 1 / count). */
  numBatchesTracked?: number;
}

/**
 * BatchNorm over x [N, C, ...] (PyTorch semantics): training normalises with the biased batch variance and
 * updates running_mean / running_var in place (running_var with the unbiased variance); eval uses the running
 * statistics. Built from differentiable ops, so gradients flow through the batch statistics.
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | undefined,
  bias: Tensor | undefined,
  options: BatchNormOptions,
): Tensor {
  const op = 'batchNorm';
  if (x.rank < 2) throw new Error(`${op}: input must be [N, C, ...], got ${formatShape(x.shape)}`);
  const c = x.shape[1]!;
  checkAffine(op, weight, bias, [c]);
  for (const [name, t] of [
    ['runningMean', runningMean],
    ['runningVar', runningVar],
  ] as const) {
    if (t && t.shape.join() !== String(c))
      throw new Error(`${op}: ${name} ${formatShape(t.shape)} does not match ${c} channels`);
  }
  const eps = options.eps ?? 1e-5;
  const bshape = [1, c, ...x.shape.slice(2).map(() => 1)];
  const axes = [0, ...x.shape.slice(2).map((_, i) => i + 2)];
  let m: Tensor;
  let v: Tensor;
  if (options.training || !runningMean || !runningVar) {
    const count = x.size / c;
    if (options.training && count <= 1)
      throw new Error(`${op}: expected more than 1 value per channel when training, got input ${formatShape(x.shape)}`);
    m = mean(x, axes, true);
    v = variance(x, axes, true, 0);
    if (options.training && runningMean && runningVar) {
      noGrad(() => {
        const momentum =
          options.momentum === null ? 1 / Math.max(options.numBatchesTracked ?? 1, 1) : (options.momentum ?? 0.1);
        const unbiased = map(op, 'a * alpha', [reshape(v, [c])], count / Math.max(count - 1, 1));
        runningMean.assign(map(op, 'a + alpha * (b - a)', [runningMean, reshape(m, [c])], momentum));
        runningVar.assign(map(op, 'a + alpha * (b - a)', [runningVar, unbiased], momentum));
      });
    }
  } else {
    m = reshape(runningMean, bshape);
    v = reshape(runningVar, bshape);
  }
  const normalised = mul(sub(x, m), rsqrt(add(v, eps)));
  return weight && bias ? add(mul(normalised, reshape(weight, bshape)), reshape(bias, bshape)) : normalised;
}

/**
 * SCHP's activated batch norm (InPlaceABN): BatchNorm whose scale is |gamma| + eps, followed by
 * LeakyReLU(slope). The official checkpoints were trained with this scale, so plain BN misreads them.
 */
export function activatedBatchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor,
  bias: Tensor,
  options: BatchNormOptions & { slope?: number },
): Tensor {
  const scale = add(abs(weight), options.eps ?? 1e-5);
  return leakyRelu(batchNorm(x, runningMean, runningVar, scale, bias, options), options.slope ?? 0.01);
}
