import { cachedKernel, fields, flatKernel, type Grid, grid1d, type Kernel, readOnly, readWrite } from './kernel.js';

/**
 * grid_sample of input [N, C, H, W] at grid [N, Ho, Wo, 2] (x, y in [-1, 1]) with PyTorch's semantics:
 * bilinear or nearest (round half to even), zeros or border padding, align_corners true/false.
 *
 * Forward: one invocation per output pixel, looping over channels (the taps are shared by all channels).
 * Backward: the same loop writes the grid gradient directly and scatter-adds the input gradient with a
 * compare-exchange loop on the float's bits (WGSL has no float atomics).
 */
export interface GridSampleSpec {
  mode: 'bilinear' | 'nearest';
  padding: 'zeros' | 'border';
  alignCorners: boolean;
}

const WG = 64;

const UNIFORMS = fields('u32', 'N', 'C', 'H', 'W', 'Ho', 'Wo');

/** Unnormalised source coordinate and d(coordinate)/d(grid value), with border clamping when asked. */
function coordinateCode(spec: GridSampleSpec): string {
  const unnorm = (v: string, size: string) =>
    spec.alignCorners ? `(${v} + 1.0) * 0.5 * (f32(${size}) - 1.0)` : `((${v} + 1.0) * f32(${size}) - 1.0) * 0.5`;
  const scale = (size: string) => (spec.alignCorners ? `0.5 * (f32(${size}) - 1.0)` : `0.5 * f32(${size})`);
  const clip = spec.padding === 'border';
  return `
  var ix = ${unnorm('gx', 'params.W')};
  var iy = ${unnorm('gy', 'params.H')};
  var dix = ${scale('params.W')};
  var diy = ${scale('params.H')};
  ${
    clip
      ? `if (ix <= 0.0 || ix >= f32(params.W) - 1.0) { dix = 0.0; }
  if (iy <= 0.0 || iy >= f32(params.H) - 1.0) { diy = 0.0; }
  ix = clamp(ix, 0.0, f32(params.W) - 1.0);
  iy = clamp(iy, 0.0, f32(params.H) - 1.0);`
      : ''
  }`;
}

/** The body's start: output pixel p (the entry's index) of image n, its grid value and where its channels go. */
const HEAD = /* wgsl */ `
  let n = p / (params.Ho * params.Wo);
  let gx = grid[2u * p];
  let gy = grid[2u * p + 1u];
  let plane = params.H * params.W;
  let inBase = n * params.C * plane;
  let outBase = n * params.C * params.Ho * params.Wo + p % (params.Ho * params.Wo);
  let outStride = params.Ho * params.Wo;`;

/** Corner (x, y) is inside the image. */
const INSIDE = `fn inside(x: i32, y: i32) -> bool { return x >= 0 && y >= 0 && x < i32(params.W) && y < i32(params.H); }
fn at(x: i32, y: i32) -> u32 { return u32(max(y, 0)) * params.W + u32(max(x, 0)); }`;

export const gridSampleKernel = cachedKernel(
  (spec: GridSampleSpec): Kernel =>
    flatKernel({
      key: `gridsample:${spec.mode}:${spec.padding}:${spec.alignCorners}`,
      buffers: [readOnly('src'), readOnly('grid'), readWrite('out')],
      uniforms: UNIFORMS,
      workgroupSize: WG,
      index: 'p',
      bound: 'params.N * params.Ho * params.Wo',
      helpers: /* wgsl */ `
${INSIDE}`,
      body: /* wgsl */ `
  ${HEAD}
  ${coordinateCode(spec)}
  ${
    spec.mode === 'nearest'
      ? `let x0 = i32(round(ix)); let y0 = i32(round(iy));
  let ok = inside(x0, y0);
  for (var c = 0u; c < params.C; c++) {
    out[outBase + c * outStride] = select(0.0, src[inBase + c * plane + at(x0, y0)], ok);
  }`
      : `let x0 = i32(floor(ix)); let y0 = i32(floor(iy));
  let x1 = x0 + 1; let y1 = y0 + 1;
  let wx1 = ix - f32(x0); let wx0 = 1.0 - wx1;
  let wy1 = iy - f32(y0); let wy0 = 1.0 - wy1;
  let k00 = select(0.0, wx0 * wy0, inside(x0, y0)); let k10 = select(0.0, wx1 * wy0, inside(x1, y0));
  let k01 = select(0.0, wx0 * wy1, inside(x0, y1)); let k11 = select(0.0, wx1 * wy1, inside(x1, y1));
  for (var c = 0u; c < params.C; c++) {
    let b = inBase + c * plane;
    out[outBase + c * outStride] = k00 * src[b + at(x0, y0)] + k10 * src[b + at(x1, y0)] + k01 * src[b + at(x0, y1)] + k11 * src[b + at(x1, y1)];
  }`
  }`,
    }),
);

export const gridSampleBackwardKernel = cachedKernel(
  (spec: GridSampleSpec): Kernel =>
    flatKernel({
      key: `gridsample:bwd:${spec.mode}:${spec.padding}:${spec.alignCorners}`,
      buffers: [readOnly('src'), readOnly('grid'), readOnly('g'), readWrite('dsrc', 'atomic<u32>'), readWrite('dgrid')],
      uniforms: UNIFORMS,
      workgroupSize: WG,
      index: 'p',
      bound: 'params.N * params.Ho * params.Wo',
      helpers: /* wgsl */ `
${INSIDE}
fn atomicAddF32(i: u32, v: f32) {
  var old = atomicLoad(&dsrc[i]);
  loop {
    let r = atomicCompareExchangeWeak(&dsrc[i], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}
fn scatter(b: u32, x: i32, y: i32, v: f32) {
  if (inside(x, y) && v != 0.0) { atomicAddF32(b + at(x, y), v); }
}`,
      body: /* wgsl */ `
  ${HEAD}
  ${coordinateCode(spec)}
  ${
    spec.mode === 'nearest'
      ? `let x0 = i32(round(ix)); let y0 = i32(round(iy));
  for (var c = 0u; c < params.C; c++) {
    scatter(inBase + c * plane, x0, y0, g[outBase + c * outStride]);
  }
  dgrid[2u * p] = 0.0;
  dgrid[2u * p + 1u] = 0.0;`
      : `let x0 = i32(floor(ix)); let y0 = i32(floor(iy));
  let x1 = x0 + 1; let y1 = y0 + 1;
  let wx1 = ix - f32(x0); let wx0 = 1.0 - wx1;
  let wy1 = iy - f32(y0); let wy0 = 1.0 - wy1;
  var gix = 0.0;
  var giy = 0.0;
  for (var c = 0u; c < params.C; c++) {
    let b = inBase + c * plane;
    let go = g[outBase + c * outStride];
    let v00 = select(0.0, src[b + at(x0, y0)], inside(x0, y0));
    let v10 = select(0.0, src[b + at(x1, y0)], inside(x1, y0));
    let v01 = select(0.0, src[b + at(x0, y1)], inside(x0, y1));
    let v11 = select(0.0, src[b + at(x1, y1)], inside(x1, y1));
    gix += go * ((v10 - v00) * wy0 + (v11 - v01) * wy1);
    giy += go * ((v01 - v00) * wx0 + (v11 - v10) * wx1);
    scatter(b, x0, y0, go * wx0 * wy0);
    scatter(b, x1, y0, go * wx1 * wy0);
    scatter(b, x0, y1, go * wx0 * wy1);
    scatter(b, x1, y1, go * wx1 * wy1);
  }
  dgrid[2u * p] = gix * dix;
  dgrid[2u * p + 1u] = giy * diy;`
  }`,
    }),
);

export const gridSampleGrid = (points: number): Grid => grid1d(points, WG);
