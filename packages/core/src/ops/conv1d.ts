import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { conv2d } from './conv.js';
import { reshape } from './shape.js';

export interface Conv1dOptions {
  stride?: number;
  /** Zero padding per side, or 'same' (stride 1 only) / 'valid'. */
  padding?: number | 'same' | 'valid';
  dilation?: number;
  groups?: number;
}

/**
 * 1-D convolution (torch.nn.functional.conv1d): x [N, C, L] or [C, L], weight [O, C / groups, K], bias [O].
 * Runs as conv2d on a height-1 view (x [N, C, 1, L], weight [O, C / groups, 1, K]), so it shares conv2d's
 * kernels and gradients.
 */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor, options: Conv1dOptions = {}): Tensor {
  const batched = x.rank === 3;
  if (x.rank !== 2 && x.rank !== 3)
    throw new Error(`conv1d: expected input [N, C, L] or [C, L], got ${formatShape(x.shape)}`);
  if (weight.rank !== 3)
    throw new Error(`conv1d: expected weight [out, in / groups, K], got ${formatShape(weight.shape)}`);
  const [N, C, L] = batched ? (x.shape as [number, number, number]) : [1, x.shape[0]!, x.shape[1]!];
  const [O, Cg, K] = weight.shape as [number, number, number];
  const padding = options.padding;
  const y = conv2d(reshape(x, [N, C, 1, L]), reshape(weight, [O, Cg, 1, K]), bias, {
    stride: [1, options.stride ?? 1],
    padding: padding === 'same' || padding === 'valid' ? padding : [0, padding ?? 0],
    dilation: [1, options.dilation ?? 1],
    groups: options.groups ?? 1,
  });
  const Lo = y.shape[3]!;
  return reshape(y, batched ? [N, O, Lo] : [O, Lo]);
}
