import { NAN_WGSL } from './elementwise.js';
import { cachedKernel, fields, flatKernel, type Grid, grid1d, type Kernel, readOnly, readWrite } from './kernel.js';

/**
 * Separable linear resampling of [P, H, W] planes: out[p, y, x] = sum_a sum_b wy[y, a] wx[x, b] in[p, iy[y, a], ix[x, b]]
 * with per-row and per-column tap tables (index + weight, `taps` entries each, unused ones weight 0).
 * Interpolation (nearest, bilinear, bicubic, any align_corners) and average pooling (plain and adaptive) are
 * all tables of this form, computed on the CPU with PyTorch's formulas.
 */
const WG = 256;

export const resampleKernel = cachedKernel(
  (taps: number): Kernel =>
    flatKernel({
      key: `resample:${taps}`,
      buffers: [
        readOnly('src'),
        readOnly('rowIdx', 'i32'),
        readOnly('rowW'),
        readOnly('colIdx', 'i32'),
        readOnly('colW'),
        readWrite('out'),
      ],
      uniforms: fields('u32', 'n', 'H', 'W', 'Ho', 'Wo'),
      workgroupSize: WG,
      body: /* wgsl */ `
  let x = i % params.Wo;
  let y = (i / params.Wo) % params.Ho;
  let plane = (i / (params.Wo * params.Ho)) * params.H * params.W;
  var acc = 0.0;
  for (var a = 0u; a < ${taps}u; a++) {
    let wy = rowW[y * ${taps}u + a];
    let row = plane + u32(rowIdx[y * ${taps}u + a]) * params.W;
    var racc = 0.0;
    for (var b = 0u; b < ${taps}u; b++) {
      racc += colW[x * ${taps}u + b] * src[row + u32(colIdx[x * ${taps}u + b])];
    }
    acc += wy * racc;
  }
  out[i] = acc;`,
    }),
);

export const resampleGrid = (n: number): Grid => grid1d(n, WG);

/**
 * Nearest-neighbour upsampling of [P, H, W] planes (W a multiple of 4) by a whole factor fy down and 2 across:
 * out[p, y, x] = src[p, y / fy, x / 2], the resample kernel's result for these tables. An invocation per 4 input
 * values of a row, read as one vec4 and written as 2 vec4 into each of its fy output rows: on lavapipe the cost of
 * a kernel like this is per invocation and per workgroup, not per byte (one invocation per output value with its
 * five table loads took 14 ms for [256, 64, 48]; this takes a fraction of it, BENCHMARKS.md).
 */
export const upsampleNearestKernel = cachedKernel(
  (fy: number): Kernel =>
    flatKernel({
      key: `resample:nearest:${fy}x2`,
      buffers: [readOnly('src', 'vec4<f32>'), readWrite('out', 'vec4<f32>')],
      uniforms: fields('u32', 'n', 'W4'),
      workgroupSize: WG,
      body: /* wgsl */ `
  let v = src[i];
  let row = i / params.W4;
  let first = (row * ${fy}u) * 2u * params.W4 + (i - row * params.W4) * 2u;
  let left = vec4<f32>(v.x, v.x, v.y, v.y);
  let right = vec4<f32>(v.z, v.z, v.w, v.w);
  for (var a = 0u; a < ${fy}u; a++) {
    out[first + a * 2u * params.W4] = left;
    out[first + a * 2u * params.W4 + 1u] = right;
  }`,
    }),
);

/**
 * The gradient of upsampleNearestKernel: each input value's fy x 2 block of the output gradient, summed row by row
 * (the order the dense backward's products sum in). An invocation per 4 input values (one vec4 written).
 */
export const blockSumKernel = cachedKernel(
  (fy: number): Kernel =>
    flatKernel({
      key: `resample:blocksum:${fy}x2`,
      buffers: [readOnly('g', 'vec4<f32>'), readWrite('out', 'vec4<f32>')],
      uniforms: fields('u32', 'n', 'W4'),
      workgroupSize: WG,
      body: /* wgsl */ `
  let row = i / params.W4;
  let first = (row * ${fy}u) * 2u * params.W4 + (i - row * params.W4) * 2u;
  var acc = vec4<f32>();
  for (var a = 0u; a < ${fy}u; a++) {
    let l = g[first + a * 2u * params.W4];
    let r = g[first + a * 2u * params.W4 + 1u];
    acc += vec4<f32>(l.x + l.y, l.z + l.w, r.x + r.y, r.z + r.w);
  }
  out[i] = acc;`,
    }),
);

/**
 * Max pooling over [P, H, W] planes with the window geometry compiled in; writes the max and the flat index
 * (within the plane) of the first maximal element, as PyTorch does. Padding never wins (it is -inf). NaN wins,
 * a later NaN over an earlier one (PyTorch's `val > maxval || isnan(val)`), tested on the bits.
 */
export const maxPoolKernel = cachedKernel(
  (g: { kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; dh: number; dw: number }): Kernel =>
    flatKernel({
      key: `maxpool:${JSON.stringify(g)}`,
      buffers: [readOnly('src'), readWrite('out'), readWrite('idx', 'i32')],
      uniforms: fields('u32', 'n', 'H', 'W', 'Ho', 'Wo'),
      workgroupSize: WG,
      helpers: NAN_WGSL,
      body: /* wgsl */ `
  let ox = i32(i % params.Wo);
  let oy = i32((i / params.Wo) % params.Ho);
  let plane = (i / (params.Wo * params.Ho)) * params.H * params.W;
  var best = -3.402823e38;
  var bestIdx = -1;
  for (var ky = 0; ky < ${g.kh}; ky++) {
    let iy = oy * ${g.sh} - ${g.ph} + ky * ${g.dh};
    if (iy < 0 || iy >= i32(params.H)) { continue; }
    for (var kx = 0; kx < ${g.kw}; kx++) {
      let ix = ox * ${g.sw} - ${g.pw} + kx * ${g.dw};
      if (ix < 0 || ix >= i32(params.W)) { continue; }
      let v = src[plane + u32(iy) * params.W + u32(ix)];
      if (bestIdx < 0 || isnan_(v) || (!isnan_(best) && v > best)) { best = v; bestIdx = iy * i32(params.W) + ix; }
    }
  }
  out[i] = best;
  idx[i] = bestIdx;`,
    }),
);

/**
 * Max-pool backward without atomics: each input pixel sums the gradients of the (few) output windows that
 * cover it and chose it as their maximum.
 */
export const maxPoolBackwardKernel = cachedKernel(
  (g: { kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; dh: number; dw: number }): Kernel =>
    flatKernel({
      key: `maxpool:bwd:${JSON.stringify(g)}`,
      buffers: [readOnly('grad'), readOnly('idx', 'i32'), readWrite('dx')],
      uniforms: fields('u32', 'n', 'H', 'W', 'Ho', 'Wo'),
      workgroupSize: WG,
      body: /* wgsl */ `
  let ix = i32(i % params.W);
  let iy = i32((i / params.W) % params.H);
  let plane = i / (params.W * params.H);
  let me = iy * i32(params.W) + ix;
  var acc = 0.0;
  for (var ky = 0; ky < ${g.kh}; ky++) {
    let ty = iy + ${g.ph} - ky * ${g.dh};
    if (ty < 0 || ty % ${g.sh} != 0) { continue; }
    let oy = ty / ${g.sh};
    if (oy >= i32(params.Ho)) { continue; }
    for (var kx = 0; kx < ${g.kw}; kx++) {
      let tx = ix + ${g.pw} - kx * ${g.dw};
      if (tx < 0 || tx % ${g.sw} != 0) { continue; }
      let ox = tx / ${g.sw};
      if (ox >= i32(params.Wo)) { continue; }
      let o = (plane * params.Ho + u32(oy)) * params.Wo + u32(ox);
      if (idx[o] == me) { acc += grad[o]; }
    }
  }
  dx[i] = acc;`,
    }),
);
