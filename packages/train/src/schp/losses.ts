/**
 * SCHP's training objective (utils/criterion.py, CriterionAll), per batch:
 *
 *   L = lambda_s * sum_{o in {parsing, fusion}} [0.5 Lovasz-softmax(o) + 0.5 CE(o)      (cycle 0)
 *                                               0.5 Lovasz-softmax(o) + 0.5 KL(o | s)   (cycles >= 1)]
 *     + lambda_e * [class-balanced CE(edge)  (cycle 0) | KL(edge | s_e)  (cycles >= 1)]
 *     + lambda_c * sum_{o in {parsing, fusion}} consistency(o, edge)
 *
 * with the official weights lambda_s = 1, lambda_e = 1, lambda_c = 0.1 (train.py's defaults). Every output is
 * first upsampled bilinearly (align_corners=true) to the label size. Soft targets in cycle m >= 1 mix the
 * aggregated model's logits z with the one-hot labels y, as the official `moving_average`:
 *   s = softmax((1 - a) z + a onehot(y)),  a = 1 / (m + 1).
 *
 * Differences from the official code (deliberate):
 * - KL is summed over classes and averaged over the non-ignored pixels (a true per-pixel KL, on the scale of
 *   the cross-entropy it replaces). The official F.kl_div with reduction 'mean' also divides by the number of
 *   classes, which shrinks the pixel-wise term 20x the moment self-correction starts; `klPerElement: true`
 *   restores that.
 * - The consistency term. The official ConsistencyLoss compares argmax-derived edges of the parsing with the
 *   argmax of the edge branch, only where both are 1, through smooth-L1: there both sides are exactly 1, so it
 *   is 0 with no gradient (argmax is not differentiable anyway). Here (see `consistencyLoss`) it compares a
 *   differentiable edge map of the parsing softmax with the predicted edge probability, so it does shape both
 *   branches.
 */
import * as T from '@leffa-webgpu/core';
import { lovaszSoftmax, type SCHPOutput } from '@leffa-webgpu/models';
import { EDGE_NEIGHBOURS } from './edges.js';

export const IGNORE_LABEL = 255;

/** Loss weights: parsing (lambda_s), edge (lambda_e), consistency (lambda_c); official 1, 1, 0.1. */
export interface SchpLossWeights {
  parsing: number;
  edge: number;
  consistency: number;
}

export const SCHP_LOSS_WEIGHTS: SchpLossWeights = { parsing: 1, edge: 1, consistency: 0.1 };

export interface SchpLossTargets {
  /** int32 [N, H, W] parsing labels; IGNORE_LABEL pixels are left out. */
  labels: T.Tensor;
  /** int32 [N, H, W] edge labels in {0, 1} (edgeTargets of the labels). */
  edges: T.Tensor;
  /**
   * Self-correction targets (cycles >= 1): the aggregated model's fusion logits [N, C, h, w] and edge logits
   * [N, 2, h, w] for the same input, and the label weight a = 1 / (m + 1).
   */
  soft?: { parsing: T.Tensor; edge: T.Tensor; alpha: number };
}

export interface SchpLossOptions {
  weights?: SchpLossWeights;
  /** Divide the KL terms also by the class count, as the official F.kl_div(reduction='mean') (default false). */
  klPerElement?: boolean;
}

export interface SchpLosses {
  total: T.Tensor;
  /** Unweighted sums over the two parsing outputs / the edge output / the consistency pairs. */
  parsing: T.Tensor;
  edge: T.Tensor;
  consistency: T.Tensor;
}

const upsampleTo = (x: T.Tensor, h: number, w: number) =>
  x.shape[2] === h && x.shape[3] === w ? x : T.interpolate(x, { size: [h, w], mode: 'bilinear', alignCorners: true });

function checkTargets(op: string, logits: T.Tensor, labels: T.Tensor): void {
  if (labels.dtype !== 'int32' || labels.rank !== 3)
    throw new Error(`${op}: labels must be int32 [N, H, W], got ${labels.dtype} ${T.formatShape(labels.shape)}`);
  if (logits.rank !== 4 || logits.shape[0] !== labels.shape[0]) {
    throw new Error(
      `${op}: logits ${T.formatShape(logits.shape)} do not match labels ${T.formatShape(labels.shape)} (expected [N, C, h, w] and [N, H, W])`,
    );
  }
}

/** 1 where the label counts, [N, H, W] float. */
const validMask = (labels: T.Tensor) => T.ne(T.cast(labels, 'float32'), IGNORE_LABEL);

/** onehot(labels) as [N, C, H, W]; ignored pixels map to class 0 (their loss is masked anyway). */
function oneHotNCHW(labels: T.Tensor, numClasses: number): T.Tensor {
  const safe = T.cast(T.mul(T.cast(labels, 'float32'), validMask(labels)), 'int32');
  return T.permute(T.oneHot(safe, numClasses), [0, 3, 1, 2]);
}

/**
 * Class-balanced edge cross-entropy (the official edge loss of cycle 0): weights w_neg = P / (P + Q) for
 * non-edge pixels and w_pos = Q / (P + Q) for edge pixels, P and Q the batch's edge / non-edge pixel counts,
 * then PyTorch's weighted mean sum(w_y * nll) / sum(w_y). Logits [N, 2, h, w] are upsampled to the edge map
 * [N, H, W]. A batch without any edge pixel gives 0 (PyTorch would give NaN there).
 */
export function balancedEdgeLoss(edgeLogits: T.Tensor, edges: T.Tensor): T.Tensor {
  checkTargets('balancedEdgeLoss', edgeLogits, edges);
  const [, H, W] = edges.shape as [number, number, number];
  const e = T.cast(edges, 'float32');
  const pos = T.sum(T.eq(e, 1));
  const neg = T.sum(T.eq(e, 0));
  const all = T.clamp(T.add(pos, neg), 1);
  // The weights come from the labels: no gradient should flow into them.
  const weight = T.noGrad(() => T.concat([T.reshape(T.div(pos, all), [1]), T.reshape(T.div(neg, all), [1])], 0));
  return T.crossEntropy(upsampleTo(edgeLogits, H, W), edges, { weight, ignoreIndex: IGNORE_LABEL });
}

/**
 * KL(s || softmax(logits)) per pixel, summed over classes, averaged over non-ignored pixels, with
 * s = softmax((1 - alpha) softLogits + alpha onehot(hard)). `mask` labels pick the pixels that count.
 */
export function softTargetKL(
  logits: T.Tensor,
  softLogits: T.Tensor,
  hard: T.Tensor,
  alpha: number,
  mask: T.Tensor,
  perElement = false,
): T.Tensor {
  const [, C, H, W] = logits.shape as [number, number, number, number];
  const mixed = T.add(T.mul(upsampleTo(softLogits, H, W), 1 - alpha), T.mul(oneHotNCHW(hard, C), alpha));
  const logS = T.noGrad(() => T.logSoftmax(mixed, 1));
  const s = T.noGrad(() => T.exp(logS));
  const kl = T.sum(T.mul(s, T.sub(logS, T.logSoftmax(logits, 1))), [1]);
  const valid = validMask(mask);
  const loss = T.div(T.sum(T.mul(kl, valid)), T.clamp(T.sum(valid), 1));
  return perElement ? T.div(loss, C) : loss;
}

/**
 * A differentiable edge map of class probabilities [N, C, H, W] -> [N, 1, H, W] in [0, 1]: for each of the
 * neighbour relations of `edgeTargets`, the total-variation distance 0.5 sum_c |p_c - p'_c| between the pixel
 * and its neighbour (pairs touching an invalid pixel count 0), the maximum over the four relations, then a
 * 3x3 max (the dilation). On one-hot probabilities it equals `edgeTargets` exactly.
 */
export function softEdgeMap(probs: T.Tensor, valid?: T.Tensor): T.Tensor {
  if (probs.rank !== 4)
    throw new Error(`softEdgeMap: expected probabilities [N, C, H, W], got ${T.formatShape(probs.shape)}`);
  const [N, , H, W] = probs.shape as [number, number, number, number];
  const v = valid ? T.reshape(valid, [N, 1, H, W]) : null;
  let edge: T.Tensor | null = null;
  for (const [dy, dx] of EDGE_NEIGHBOURS) {
    const y0 = Math.max(0, -dy);
    const y1 = H - Math.max(0, dy);
    const x0 = Math.max(0, -dx);
    const x1 = W - Math.max(0, dx);
    if (y1 <= y0 || x1 <= x0) continue;
    const at = (t: T.Tensor, oy: number, ox: number) =>
      T.slice(t, [null, null, { start: y0 + oy, end: y1 + oy }, { start: x0 + ox, end: x1 + ox }]);
    let tv = T.mul(T.sum(T.abs(T.sub(at(probs, 0, 0), at(probs, dy, dx))), [1], true), 0.5);
    if (v) tv = T.mul(tv, T.mul(at(v, 0, 0), at(v, dy, dx)));
    const full = T.pad(tv, [x0, W - x1, y0, H - y1]);
    edge = edge ? T.maximum(edge, full) : full;
  }
  if (!edge) return T.zeros([N, 1, H, W]);
  return T.maxPool2d(edge, { kernelSize: 3, stride: 1, padding: 1 });
}

/**
 * The consistency term used here (lambda_c): smooth-L1 (beta 1) between the parsing's differentiable edge
 * map softEdgeMap(softmax(parsing)) and the edge branch's edge probability softmax(edge)[:, 1], averaged over
 * the non-ignored pixels where any of the three says "edge": the edge label, the predicted edge (p > 0.5) or
 * the parsing's edge (> 0.5). That is the union of the positive sets the official code means to compare (it
 * takes their intersection of argmaxes, which makes it identically zero). Both branches get gradient.
 */
export function consistencyLoss(
  parsingLogits: T.Tensor,
  edgeLogits: T.Tensor,
  labels: T.Tensor,
  edges: T.Tensor,
): T.Tensor {
  checkTargets('consistencyLoss', parsingLogits, labels);
  const [N, H, W] = labels.shape as [number, number, number];
  const valid = validMask(labels);
  const fromParsing = T.reshape(softEdgeMap(T.softmax(upsampleTo(parsingLogits, H, W), 1), valid), [N, H, W]);
  const predicted = T.reshape(T.slice(T.softmax(upsampleTo(edgeLogits, H, W), 1), [null, { start: 1, end: 2 }]), [
    N,
    H,
    W,
  ]);
  const mask = T.noGrad(() => {
    const any = T.maximum(T.maximum(T.eq(T.cast(edges, 'float32'), 1), T.gt(predicted, 0.5)), T.gt(fromParsing, 0.5));
    return T.mul(any, valid);
  });
  const d = T.smoothL1Loss(fromParsing, predicted, { beta: 1, reduction: 'none' });
  return T.div(T.sum(T.mul(d, mask)), T.clamp(T.sum(mask), 1));
}

/** The whole objective of one batch (see the module comment); `out` is SCHPNetwork's [[parsing, fusion], [edge]]. */
export function schpLoss(out: SCHPOutput, targets: SchpLossTargets, options: SchpLossOptions = {}): SchpLosses {
  const w = options.weights ?? SCHP_LOSS_WEIGHTS;
  const { labels, edges, soft } = targets;
  const [, H, W] = labels.shape as [number, number, number];
  if (edges.dtype !== 'int32' || edges.shape.join() !== labels.shape.join()) {
    throw new Error(
      `schpLoss: edges must be int32 ${T.formatShape(labels.shape)} like the labels, got ${edges.dtype} ${T.formatShape(edges.shape)}`,
    );
  }
  if (soft && !(soft.alpha >= 0 && soft.alpha <= 1))
    throw new Error(`schpLoss: soft.alpha must be in [0, 1], got ${soft.alpha}`);
  const [outputs, [edgeOut]] = out;
  let parsing: T.Tensor | null = null;
  for (const o of outputs) {
    checkTargets('schpLoss', o, labels);
    const up = upsampleTo(o, H, W);
    const lovasz = lovaszSoftmax(T.softmax(up, 1), labels, { ignoreIndex: IGNORE_LABEL });
    const pixel = soft
      ? softTargetKL(up, soft.parsing, labels, soft.alpha, labels, options.klPerElement)
      : T.crossEntropy(up, labels, { ignoreIndex: IGNORE_LABEL });
    const term = T.add(T.mul(lovasz, 0.5), T.mul(pixel, 0.5));
    parsing = parsing ? T.add(parsing, term) : term;
  }
  const edgeUp = upsampleTo(edgeOut, H, W);
  const edge = soft
    ? softTargetKL(edgeUp, soft.edge, edges, soft.alpha, labels, options.klPerElement)
    : balancedEdgeLoss(edgeUp, edges);
  let consistency: T.Tensor | null = null;
  for (const o of outputs) {
    const c = consistencyLoss(o, edgeUp, labels, edges);
    consistency = consistency ? T.add(consistency, c) : c;
  }
  if (!parsing || !consistency) throw new Error('schpLoss: the network gave no parsing outputs');
  const total = T.add(T.add(T.mul(parsing, w.parsing), T.mul(edge, w.edge)), T.mul(consistency, w.consistency));
  return { total, parsing, edge, consistency };
}
