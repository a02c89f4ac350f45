import { cachedKernel, fields, flatKernel, type Grid, grid1d, type Kernel, readOnly, readWrite } from './kernel.js';

/**
 * ROIAlign (He et al., Mask R-CNN) with the semantics of detectron2's / torchvision's kernel: input [N, C, H, W],
 * rois [K, 5] as (batch index, x1, y1, x2, y2) in image coordinates, times `scale` to the feature map; each of the
 * PH x PW bins averages a gh x gw grid of bilinear samples (gh = samplingRatio, or ceil(roi height / PH) when it
 * is 0). `aligned` shifts the box by -0.5 pixel (ROIAlignV2); without it boxes are at least 1 x 1. Samples more than
 * one pixel outside the map count as 0; those within it are clamped to the border.
 *
 * One invocation per output element (k, c, ph, pw), the sample loop in registers.
 */
export interface RoiAlignSpec {
  aligned: boolean;
}

const WG = 64;

export const roiAlignKernel = cachedKernel(
  (spec: RoiAlignSpec): Kernel =>
    flatKernel({
      key: `roialign:${spec.aligned}`,
      buffers: [readOnly('src'), readOnly('rois'), readWrite('out')],
      uniforms: [
        ...fields('u32', 'N', 'C', 'H', 'W', 'K', 'PH', 'PW', 'samplingRatio'),
        { name: 'scale', type: 'f32' },
      ],
      workgroupSize: WG,
      index: 'p',
      bound: 'params.K * params.C * params.PH * params.PW',
      helpers: /* wgsl */ `
fn bilinear(base: u32, yIn: f32, xIn: f32) -> f32 {
  let h = i32(params.H);
  let w = i32(params.W);
  if (yIn < -1.0 || yIn > f32(h) || xIn < -1.0 || xIn > f32(w)) { return 0.0; }
  var y = max(yIn, 0.0);
  var x = max(xIn, 0.0);
  var yl = i32(y);
  var xl = i32(x);
  var yh: i32;
  var xh: i32;
  if (yl >= h - 1) { yl = h - 1; yh = h - 1; y = f32(yl); } else { yh = yl + 1; }
  if (xl >= w - 1) { xl = w - 1; xh = w - 1; x = f32(xl); } else { xh = xl + 1; }
  let ly = y - f32(yl);
  let lx = x - f32(xl);
  let hy = 1.0 - ly;
  let hx = 1.0 - lx;
  let v1 = src[base + u32(yl * w + xl)];
  let v2 = src[base + u32(yl * w + xh)];
  let v3 = src[base + u32(yh * w + xl)];
  let v4 = src[base + u32(yh * w + xh)];
  return hy * hx * v1 + hy * lx * v2 + ly * hx * v3 + ly * lx * v4;
}`,
      body: /* wgsl */ `
  let pw = p % params.PW;
  let ph = (p / params.PW) % params.PH;
  let c = (p / (params.PW * params.PH)) % params.C;
  let k = p / (params.PW * params.PH * params.C);
  let b = min(u32(max(rois[5u * k], 0.0)), params.N - 1u);
  let offset = ${spec.aligned ? '0.5' : '0.0'};
  let x1 = rois[5u * k + 1u] * params.scale - offset;
  let y1 = rois[5u * k + 2u] * params.scale - offset;
  let x2 = rois[5u * k + 3u] * params.scale - offset;
  let y2 = rois[5u * k + 4u] * params.scale - offset;
  var rw = x2 - x1;
  var rh = y2 - y1;
  ${spec.aligned ? '' : 'rw = max(rw, 1.0);\n  rh = max(rh, 1.0);'}
  let bh = rh / f32(params.PH);
  let bw = rw / f32(params.PW);
  var gh = params.samplingRatio;
  var gw = params.samplingRatio;
  if (gh == 0u) {
    gh = u32(ceil(rh / f32(params.PH)));
    gw = u32(ceil(rw / f32(params.PW)));
  }
  let count = max(f32(gh * gw), 1.0);
  let base = (b * params.C + c) * params.H * params.W;
  var acc = 0.0;
  for (var iy = 0u; iy < gh; iy++) {
    let y = y1 + f32(ph) * bh + (f32(iy) + 0.5) * bh / f32(gh);
    for (var ix = 0u; ix < gw; ix++) {
      let x = x1 + f32(pw) * bw + (f32(ix) + 0.5) * bw / f32(gw);
      acc += bilinear(base, y, x);
    }
  }
  out[p] = acc / count;`,
    }),
);

export const roiAlignGrid = (outputs: number): Grid => grid1d(outputs, WG);
