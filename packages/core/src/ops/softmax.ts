import { type SoftmaxKind, chooseRowMode, softmaxGrid, softmaxKernel } from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { normalizeAxis } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { emptyTensor, launch } from './launch.js';
import { transpose } from './shape.js';

/** Runs a row kernel over the last axis, moving `axis` there first when needed. */
function overRows(op: string, x: Tensor, axis: number, run: (rowsMajor: Tensor[]) => Tensor, extra: Tensor[] = []): Tensor {
  if (x.dtype !== 'float32') throw new Error(`${op}: expected float32, got ${x.dtype}`);
  const a = normalizeAxis(op, axis, x.rank);
  if (a === x.rank - 1 || x.rank === 0) return run([x, ...extra]);
  const moved = run([x, ...extra].map((t) => transpose(t, a, -1)));
  return transpose(moved, a, -1);
}

function rowKernel(kind: SoftmaxKind, backward: boolean, inputs: Tensor[]): Tensor {
  const x = inputs[0]!;
  const cols = x.rank === 0 ? 1 : x.shape[x.rank - 1]!;
  const rows = x.size / Math.max(cols, 1);
  const out = emptyTensor(x.shape, 'float32', kind);
  if (out.size === 0) return out;
  const mode = chooseRowMode(cols);
  const vec = mode === 'row' && cols % 4 === 0;
  launch(softmaxKernel(kind, backward, mode, vec), inputs, [out], { rows, cols }, softmaxGrid(mode, rows));
  return out;
}

function defineSoftmax(kind: SoftmaxKind) {
  return defineOp(kind, {
    forward: (_ctx, x: Tensor, axis: number = -1) => overRows(kind, x, axis, (ts) => rowKernel(kind, false, ts)),
    backward: ({ args: [, axis], outputs: [y] }, g) => [
      overRows(`${kind}.backward`, y!, axis ?? -1, (ts) => rowKernel(kind, true, ts), [g]),
    ],
  });
}

/** softmax along `axis` (default last), computed stably. */
export const softmax = defineSoftmax('softmax');
/** log(softmax(x)) along `axis`, computed stably. */
export const logSoftmax = defineSoftmax('logsoftmax');
