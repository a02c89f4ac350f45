import {
  type GridSampleSpec,
  gridSampleBackwardKernel,
  gridSampleGrid,
  gridSampleKernel,
} from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { zeros } from '../forward/creation.js';
import { emptyTensor, launch } from '../forward/launch.js';

export interface GridSampleOptions {
  mode?: 'bilinear' | 'nearest';
  paddingMode?: 'zeros' | 'border';
  /** PyTorch's default is false. */
  alignCorners?: boolean;
}

const specOf = (o: GridSampleOptions): GridSampleSpec => ({
  mode: o.mode ?? 'bilinear',
  padding: o.paddingMode ?? 'zeros',
  alignCorners: o.alignCorners ?? false,
});

function dims(input: Tensor, grid: Tensor) {
  const [N, C, H, W] = input.shape as [number, number, number, number];
  const [, Ho, Wo] = grid.shape as [number, number, number, number];
  return { N, C, H, W, Ho, Wo };
}

/**
 * Samples input [N, C, H, W] at grid [N, Ho, Wo, 2] (normalised x, y) as torch.nn.functional.grid_sample
 * (defaults bilinear, zeros, align_corners=false). Differentiable with respect to the input and the grid.
 */
export const gridSample = defineOp('grid_sample', {
  forward: (_ctx, input: Tensor, grid: Tensor, options: GridSampleOptions = {}) => {
    const op = 'gridSample';
    if (input.rank !== 4 || grid.rank !== 4 || grid.shape[3] !== 2 || grid.shape[0] !== input.shape[0]) {
      throw new Error(
        `${op}: expected input [N, C, H, W] and grid [N, Ho, Wo, 2], got ${formatShape(input.shape)} and ${formatShape(grid.shape)}`,
      );
    }
    const d = dims(input, grid);
    const out = emptyTensor([d.N, d.C, d.Ho, d.Wo], 'float32', op);
    if (out.size > 0)
      launch(gridSampleKernel(specOf(options)), [input, grid], [out], d, gridSampleGrid(d.N * d.Ho * d.Wo));
    return out;
  },
  backward: ({ args: [input, grid, options] }, g) => {
    const d = dims(input, grid);
    const dInput = zeros(input.shape);
    const dGrid = emptyTensor(grid.shape, 'float32', 'gridSample.backward');
    if (grid.size > 0) {
      launch(
        gridSampleBackwardKernel(specOf(options ?? {})),
        [input, grid, g],
        [dInput, dGrid],
        d,
        gridSampleGrid(d.N * d.Ho * d.Wo),
      );
    }
    return [dInput, dGrid];
  },
});
