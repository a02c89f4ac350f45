import {
  type GradNormKind,
  gradNormFinalizeKernel,
  gradNormGroups,
  gradNormPartialKernel,
  gridGroups,
  optimGroups,
  scaleByKernel,
} from '@leffa-webgpu/kernels-wgsl';
import { zeros } from '../forward/creation.js';
import { emptyTensor, launch } from '../forward/launch.js';
import type { Storage } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';
import { chunks, multiLayout, splitByVec4, tensorsPerDispatch } from './multi-tensor.js';
import { kindOf } from './optimizer.js';

/**
 * Scales the gradients of `params` in place so that their total `normType`-norm (over all gradients, as if
 * concatenated) is at most `maxNorm`: every gradient is multiplied by min(1, maxNorm / (norm + 1e-6)), as
 * torch.nn.utils.clip_grad_norm_ does. Parameters without a gradient are ignored.
 *
 * Nothing is read back: per-gradient partial norms, the total and the coefficient stay on the GPU and the
 * scaling kernels read the coefficient from a buffer. Returns the total norm (before clipping) as a
 * 0-dimensional tensor, which the caller owns. normType is a positive number or Infinity (max |g|).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number, normType = 2): Tensor {
  if (!Array.isArray(params)) throw new Error(`clipGradNorm: expected an array of tensors, got ${kindOf(params)}`);
  if (typeof maxNorm !== 'number' || Number.isNaN(maxNorm) || maxNorm < 0) {
    throw new Error(`clipGradNorm: maxNorm must be a number >= 0, got ${String(maxNorm)}`);
  }
  if (typeof normType !== 'number' || Number.isNaN(normType) || normType <= 0) {
    throw new Error(`clipGradNorm: normType must be a positive number or Infinity, got ${String(normType)}`);
  }
  const grads: Tensor[] = [];
  params.forEach((p, i) => {
    if (!(p instanceof Tensor)) throw new Error(`clipGradNorm: parameter ${i} is not a Tensor (got ${kindOf(p)})`);
    if (!p.grad) return;
    if (p.grad.isDisposed) throw new Error(`clipGradNorm: the gradient of parameter ${i} was disposed`);
    if (p.grad.dtype !== 'float32')
      throw new Error(`clipGradNorm: the gradient of parameter ${i} is ${p.grad.dtype}, expected float32`);
    grads.push(p.grad);
  });
  if (grads.length === 0) return zeros([]);
  const kind: GradNormKind = normType === Infinity ? 'inf' : normType === 1 ? 'l1' : normType === 2 ? 'l2' : 'lp';
  const counts = grads.map((g) => gradNormGroups(g.size));
  const partials = emptyTensor([counts.reduce((a, b) => a + b, 0)], 'float32', 'clipGradNorm');
  const norm = emptyTensor([], 'float32', 'clipGradNorm');
  const coef = emptyTensor([1], 'float32', 'clipGradNorm');
  // Many gradients per dispatch (as many as the stage binds besides its one other buffer): a model's small
  // gradients (biases, norms) would otherwise cost a dispatch each, twice.
  const batch = tensorsPerDispatch(1, 1);
  let offset = 0;
  for (const chunk of chunks(grads, batch)) {
    // An empty gradient's workgroup runs no iterations and contributes 0, the identity of both sum and max of |g|.
    const { n, first, groups } = multiLayout(chunk, gradNormGroups);
    launch(
      gradNormPartialKernel(kind, chunk.length),
      chunk,
      [partials],
      { offset, p: normType, n, first },
      gridGroups(groups),
    );
    offset += groups;
  }
  launch(gradNormFinalizeKernel(kind), [partials], [norm, coef], { count: offset, maxNorm, p: normType }, [1, 1, 1]);
  // Gradients may share storage (a gradient the engine hands to several inputs becomes aliases of one
  // buffer): each buffer is scaled once (and bound once: a dispatch may not write one buffer twice), while the
  // norm above counted every gradient, as PyTorch does.
  const distinct = new Map<Storage, Tensor>();
  for (const g of grads) if (g.size > 0 && !distinct.has(g.storage)) distinct.set(g.storage, g);
  for (const { vec4, items } of splitByVec4([...distinct.values()], (g) => [g])) {
    for (const chunk of chunks(items, batch)) {
      const { n, first, groups } = multiLayout(chunk, optimGroups, vec4);
      launch(scaleByKernel(chunk.length, vec4), [coef], chunk, { n, first }, gridGroups(groups));
    }
  }
  partials.dispose();
  coef.dispose();
  return norm;
}
