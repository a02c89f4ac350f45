import { roiAlignGrid, roiAlignKernel } from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { emptyTensor, launch } from '../forward/launch.js';

export interface RoiAlignOptions {
  /** [PH, PW] bins per box (or one number for both). */
  outputSize: number | [number, number];
  /** Feature-map pixels per image pixel (1 / stride). */
  spatialScale: number;
  /** Samples per bin along each axis; 0 (the default) adapts it to the box, ceil(box size / bins). */
  samplingRatio?: number;
  /** Half-pixel-corrected boxes (ROIAlignV2, torchvision's aligned=True); false (the default) is the original ROIAlign. */
  aligned?: boolean;
}

/**
 * ROIAlign as torchvision.ops.roi_align / detectron2's ROIAlign: input [N, C, H, W], rois [K, 5] rows
 * (batch index, x1, y1, x2, y2) in image coordinates; returns [K, C, PH, PW], each bin the mean of a grid of
 * bilinear samples. Batch indices outside [0, N) are clamped. Forward only: not differentiable.
 */
export const roiAlign = defineOp('roi_align', {
  forward: (_ctx, input: Tensor, rois: Tensor, options: RoiAlignOptions) => {
    const op = 'roiAlign';
    if (input.rank !== 4 || rois.rank !== 2 || rois.shape[1] !== 5) {
      throw new Error(
        `${op}: expected input [N, C, H, W] and rois [K, 5] (batch index, x1, y1, x2, y2), got ${formatShape(input.shape)} and ${formatShape(rois.shape)}`,
      );
    }
    if (input.dtype !== 'float32' || rois.dtype !== 'float32')
      throw new Error(`${op}: expected float32 input and rois, got ${input.dtype} and ${rois.dtype}`);
    const [PH, PW] =
      typeof options.outputSize === 'number' ? [options.outputSize, options.outputSize] : options.outputSize;
    const sr = options.samplingRatio ?? 0;
    if (!(Number.isInteger(PH) && PH > 0 && Number.isInteger(PW) && PW > 0))
      throw new Error(`${op}: outputSize must be positive integers, got ${PH} x ${PW}`);
    if (!(Number.isInteger(sr) && sr >= 0)) throw new Error(`${op}: samplingRatio must be an integer >= 0, got ${sr}`);
    if (!(options.spatialScale > 0)) throw new Error(`${op}: spatialScale must be > 0, got ${options.spatialScale}`);
    const [N, C, H, W] = input.shape as [number, number, number, number];
    const K = rois.shape[0]!;
    if (N === 0 && K > 0) throw new Error(`${op}: ${K} rois but an empty input batch ${formatShape(input.shape)}`);
    const out = emptyTensor([K, C, PH, PW], 'float32', op);
    if (out.size > 0) {
      launch(
        roiAlignKernel({ aligned: options.aligned ?? false }),
        [input, rois],
        [out],
        { N, C, H, W, K, PH, PW, samplingRatio: sr, scale: options.spatialScale },
        roiAlignGrid(out.size),
      );
    }
    return out;
  },
});
