import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkIndexRange, oneHot } from './indexing.js';
import { abs, add, clamp, div, map, mul, ne, neg, softplus, square, sub } from './elementwise.js';
import { mean, sum } from './reduce.js';
import { reshape } from './shape.js';
import { logSoftmax } from './softmax.js';
import { cast } from './cast.js';
import { tensor } from '../forward/creation.js';
import { permute } from './shape.js';

/*
 * Losses, built from differentiable ops (their gradients come from the ops' own rules). Reductions follow
 * PyTorch: 'mean' (default), 'sum', 'none'.
 */

export type Reduction = 'mean' | 'sum' | 'none';

function reduce(op: string, x: Tensor, reduction: Reduction): Tensor {
  if (reduction === 'none') return x;
  if (reduction === 'sum') return sum(x);
  if (reduction === 'mean') return mean(x);
  throw new Error(`${op}: unknown reduction '${reduction as string}'`);
}

function sameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.join() !== b.shape.join())
    throw new Error(`${op}: input ${formatShape(a.shape)} and target ${formatShape(b.shape)} must have the same shape`);
}

export const mseLoss = (input: Tensor, target: Tensor, reduction: Reduction = 'mean') => {
  sameShape('mseLoss', input, target);
  return reduce('mseLoss', square(sub(input, target)), reduction);
};

export const l1Loss = (input: Tensor, target: Tensor, reduction: Reduction = 'mean') => {
  sameShape('l1Loss', input, target);
  return reduce('l1Loss', abs(sub(input, target)), reduction);
};

/** Huber-style smooth L1: 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (beta 0 is L1). */
export function smoothL1Loss(
  input: Tensor,
  target: Tensor,
  options: { beta?: number; reduction?: Reduction } = {},
): Tensor {
  sameShape('smoothL1Loss', input, target);
  const beta = options.beta ?? 1;
  const d = abs(sub(input, target));
  // 0.5 min(d, beta)^2 / beta + max(d - beta, 0): the piecewise form written with differentiable ops.
  const value = beta === 0 ? d : add(div(mul(square(clamp(d, -Infinity, beta)), 0.5), beta), clamp(sub(d, beta), 0));
  return reduce('smoothL1Loss', value, options.reduction ?? 'mean');
}

/** Binary cross-entropy on logits: max(x, 0) - x*y + log(1 + exp(-|x|)), with optional weight and pos_weight. */
export function binaryCrossEntropyWithLogits(
  logits: Tensor,
  target: Tensor,
  options: { weight?: Tensor; posWeight?: Tensor; reduction?: Reduction } = {},
): Tensor {
  sameShape('binaryCrossEntropyWithLogits', logits, target);
  // softplus(-x) = log(1 + exp(-x)); loss = (1 - y) x + (1 + (pw - 1) y) softplus(-x).
  const spNeg = softplus(neg(logits));
  const coef = options.posWeight ? add(mul(sub(options.posWeight, 1), target), 1) : undefined;
  let loss = add(mul(sub(1, target), logits), coef ? mul(coef, spNeg) : spNeg);
  if (options.weight) loss = mul(loss, options.weight);
  return reduce('binaryCrossEntropyWithLogits', loss, options.reduction ?? 'mean');
}

export interface CrossEntropyOptions {
  /** Per-class weights [C]. */
  weight?: Tensor;
  /** Target value to skip (PyTorch's default -100; SCHP uses 255). */
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
}

/**
 * Cross-entropy of logits [N, C] or [N, C, d1, ...] against int32 class targets [N] or [N, d1, ...], with
 * PyTorch's semantics: ignored targets contribute nothing and 'mean' divides by the summed weights of the
 * targets that count.
 */
export function crossEntropy(logits: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  if (target.dtype !== 'int32') throw new Error(`${op}: target must be int32 class indices, got ${target.dtype}`);
  if (
    logits.rank < 2 ||
    target.rank !== logits.rank - 1 ||
    target.shape[0] !== logits.shape[0] ||
    target.shape.slice(1).join() !== logits.shape.slice(2).join()
  ) {
    throw new Error(
      `${op}: logits ${formatShape(logits.shape)} and target ${formatShape(target.shape)} do not match (expected [N, C, ...] and [N, ...])`,
    );
  }
  const C = logits.shape[1]!;
  if (options.weight && options.weight.shape.join() !== String(C))
    throw new Error(`${op}: weight ${formatShape(options.weight.shape)} must be [${C}]`);
  const ignore = options.ignoreIndex ?? -100;
  checkIndexRange(op, target, C, 'target', ignore);
  // Class axis last: [..., C].
  const perm = [0, ...Array.from({ length: logits.rank - 2 }, (_, i) => i + 2), 1];
  const logp = logits.rank === 2 ? logSoftmax(logits, 1) : permute(logSoftmax(logits, 1), perm);
  const targetF = cast(target, 'float32');
  const valid = ne(targetF, ignore);
  // Ignored pixels get class 0 for the one-hot lookup; `valid` removes their contribution.
  const hot = oneHot(cast(map(op, 'select(0.0, a, a != alpha)', [targetF], ignore), 'int32'), C);
  const smoothing = options.labelSmoothing ?? 0;
  // Per element: -sum_c q_c w_c logp_c with q = (1 - s) onehot + s / C (weights apply per class, as PyTorch).
  const q = smoothing > 0 ? add(mul(hot, 1 - smoothing), smoothing / C) : hot;
  const w = options.weight ? reshape(options.weight, [...hot.shape.map(() => 1).slice(1), C]) : undefined;
  const weighted = w ? mul(q, w) : q;
  const perElement = mul(neg(sum(mul(weighted, logp), -1)), valid);
  const reduction = options.reduction ?? 'mean';
  if (reduction !== 'mean') return reduce(op, perElement, reduction);
  // Mean over counted targets, weighted by their class weight.
  const denom = w ? sum(mul(sum(mul(hot, w), -1), valid)) : sum(valid);
  return div(sum(perElement), clamp(denom, 1e-12));
}

/** KL(target || softmax) with input log-probabilities, PyTorch's kl_div (reduction 'batchmean' divides by N). */
export function klDiv(logProbs: Tensor, target: Tensor, reduction: Reduction | 'batchmean' = 'mean'): Tensor {
  sameShape('klDiv', logProbs, target);
  // target * (log target - input), with 0 * log 0 = 0.
  const logTarget = map('klDiv', 'select(0.0, log(a), a > 0.0)', [target]);
  const pointwise = mul(target, sub(logTarget, logProbs));
  if (reduction === 'batchmean') return div(sum(pointwise), logProbs.shape[0] ?? 1);
  return reduce('klDiv', pointwise, reduction);
}
