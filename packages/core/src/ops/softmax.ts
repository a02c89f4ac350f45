import { type SoftmaxKind, chooseRowMode, softmaxGrid, softmaxKernel } from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { normalizeAxis, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { emptyTensor, floatResult, launch } from '../forward/launch.js';
import { activeDevice } from '../device/device.js';
import { matmulVariantFor } from './matmul.js';
import { transpose } from './shape.js';

/**
 * Runs the row kernel along `axis`. Short rows (thread mode) are read in place with their stride, whatever the
 * axis; long rows along another axis are moved last and back.
 */
function overRows(kind: SoftmaxKind, backward: boolean, x: Tensor, axis: number, extra: Tensor[] = []): Tensor {
  const op = backward ? `${kind}.backward` : kind;
  floatResult(op, [x]);
  const a = x.rank === 0 ? 0 : normalizeAxis(op, axis, x.rank);
  const cols = x.rank === 0 ? 1 : x.shape[a]!;
  const inner = sizeOf(x.shape.slice(a + 1));
  if (inner === 1 || chooseRowMode(cols) === 'thread') return rowKernel(kind, backward, [x, ...extra], cols, inner);
  const moved = [x, ...extra].map((t) => transpose(t, a, -1));
  return transpose(rowKernel(kind, backward, moved, cols, 1), a, -1);
}

/** The kernel over rows of `cols` elements `inner` apart (inner > 1 only in thread mode). */
function rowKernel(kind: SoftmaxKind, backward: boolean, inputs: Tensor[], cols: number, inner: number): Tensor {
  const x = inputs[0]!;
  const rows = x.size / Math.max(cols, 1);
  const out = emptyTensor(x.shape, floatResult(kind, inputs), kind);
  if (out.size === 0) return out;
  const mode = chooseRowMode(cols);
  const vec = mode === 'row' && cols % 4 === 0;
  // CPU adapters (those the subgroup-broadcast matmul suits, with subgroups of 8 or more): barrier-free rows.
  const subgroup = mode === 'row' && matmulVariantFor(activeDevice()) === 'broadcast';
  launch(
    softmaxKernel(kind, backward, mode, vec, subgroup),
    inputs,
    [out],
    mode === 'thread' ? { rows, cols, inner } : { rows, cols },
    softmaxGrid(mode, rows),
  );
  return out;
}

function defineSoftmax(kind: SoftmaxKind) {
  return defineOp(kind, {
    forward: (_ctx, x: Tensor, axis: number = -1) => overRows(kind, false, x, axis),
    backward: ({ args: [, axis], outputs: [y] }, g) => [overRows(kind, true, y!, axis ?? -1, [g])],
  });
}

/** softmax along `axis` (default last), computed stably. */
export const softmax = defineSoftmax('softmax');
/** log(softmax(x)) along `axis`, computed stably. */
export const logSoftmax = defineSoftmax('logsoftmax');
