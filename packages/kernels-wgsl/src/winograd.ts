import {
  cachedKernel,
  FLAT_INDEX_WGSL,
  type Grid,
  grid1d,
  type Kernel,
  makeKernel,
  readOnly,
  readWrite,
} from './kernel.js';

/**
 * Winograd F(2x2, 3x3) transforms for stride-1, undilated, ungrouped 3x3 convolutions. The output is cut
 * into 2x2 tiles; tile t of image n reads the 4x4 input patch whose top-left corner is (2 ty - padH,
 * 2 tx - padW) (zeros outside the image). With
 *
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],  A^T = [1 1 1 0; 0 1 -1 -1]
 *
 * the forward pass is, for each of the 16 positions xi of the 4x4 transformed tile,
 *
 *   U[xi] = (G w G^T)[xi]   [Cout, Cin]         (winogradFilter)
 *   V[xi] = (B^T d B)[xi]   [Cin, tiles]        (winogradInput)
 *   M[xi] = U[xi] @ V[xi]   [Cout, tiles]       (16 batched matmuls: the matmul kernel)
 *   y     = A^T M A         2x2 per tile        (winogradOutput)
 *
 * which takes 16 multiplies per 2x2 outputs and input channel instead of 36. The input gradient is the same
 * forward product on dy with the filter flipped and transposed (winogradFilter flip) and padding 2 - p. The
 * weight gradient differentiates the forward: dM = A dy A^T per tile (winogradGrad), dU[xi] = dM[xi] @ V[xi]^T
 * summed over tiles (a matmul with K = tiles), dw = G^T dU G (winogradFilterGrad).
 *
 * Layouts: U is [16, rows, Kp], V is [16, Kp, Tp], M and dM are [16, rows, Tp], where Kp (the channel count
 * the product sums over) and Tp (tiles of all images, n-major then ty, tx) are rounded up to multiples of 4 so
 * that the matmul reads them as vec4; the padding rows and columns are written as zeros.
 */
/** Invocations per workgroup of every transform (here and in winograd-f4.ts). */
export const WINOGRAD_WG = 64;
const WG = WINOGRAD_WG;

/** Uniforms of the image-side transforms (here and in winograd-f4.ts). */
export const WINOGRAD_PLANE_UNIFORMS = [
  { name: 'C', type: 'u32' }, // channels of the image-side tensor
  { name: 'Cp', type: 'u32' }, // channels rounded up (rows of V / M)
  { name: 'H', type: 'u32' }, // input (winogradInput) or output (winogradOutput / winogradGrad) height
  { name: 'W', type: 'u32' },
  { name: 'th', type: 'u32' }, // tiles per image along y and x
  { name: 'tw', type: 'u32' },
  { name: 'T', type: 'u32' }, // tiles of all images
  { name: 'Tp', type: 'u32' }, // rounded up
  { name: 'padH', type: 'i32' },
  { name: 'padW', type: 'i32' },
] as const;

/** Flat invocation -> (channel row c, tile t) over [Cp, Tp], and tile t -> (image, ty, tx). */
export const WINOGRAD_TILE_PROLOGUE = /* wgsl */ `
  let id = flatGroup(wid, nwg) * ${WG}u + lid.x;
  if (id >= params.Cp * params.Tp) { return; }
  let c = id / params.Tp;
  let t = id % params.Tp;
  let perImage = params.th * params.tw;
  let tc = min(t, params.T - 1u); // padding tiles read (and discard) the last real tile
  let img = tc / perImage;
  let ty = (tc % perImage) / params.tw;
  let tx = tc % params.tw;
  let valid = c < params.C && t < params.T;
  let plane = params.Cp * params.Tp;`;

/** The transforms' entry point: a 1-D grid of WINOGRAD_WG invocations per workgroup. */
export const WINOGRAD_ENTRY = /* wgsl */ `${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`;

/** Launch grid of the tile transforms: one invocation per (channel row, tile). */
export function winogradTileGrid(Cp: number, Tp: number): Grid {
  return grid1d(Cp * Tp, WG);
}

/** Launch grid of the filter transforms: one invocation per (row, column) of U. */
export function winogradFilterGrid(rows: number, cols: number): Grid {
  return grid1d(rows * cols, WG);
}

/** V = B^T d B of every 4x4 input patch: x [N, C, H, W] -> v [16, Cp, Tp]. */
export const winogradInputKernel = cachedKernel(
  (): Kernel =>
    makeKernel({
      key: 'winograd:input',
      buffers: [readOnly('x'), readWrite('v')],
      uniforms: WINOGRAD_PLANE_UNIFORMS,
      workgroupSize: [WG, 1, 1],
      body: /* wgsl */ `${WINOGRAD_ENTRY}
  ${WINOGRAD_TILE_PROLOGUE}
  let y0 = i32(ty * 2u) - params.padH;
  let x0 = i32(tx * 2u) - params.padW;
  let base = (img * params.C + min(c, params.C - 1u)) * params.H * params.W;
  var d: array<vec4<f32>, 4>;
  for (var i = 0; i < 4; i++) {
    let iy = y0 + i;
    let rowOk = valid && iy >= 0 && iy < i32(params.H);
    let row = base + u32(max(iy, 0)) * params.W;
    var r = vec4<f32>();
    for (var j = 0; j < 4; j++) {
      let ix = x0 + j;
      r[j] = select(0.0, x[row + u32(max(ix, 0))], rowOk && ix >= 0 && ix < i32(params.W));
    }
    d[i] = r;
  }
  let t0 = d[0] - d[2];
  let t1 = d[1] + d[2];
  let t2 = d[2] - d[1];
  let t3 = d[1] - d[3];
  let rows = array<vec4<f32>, 4>(t0, t1, t2, t3);
  let out = c * params.Tp + t;
  for (var i = 0u; i < 4u; i++) {
    let r = rows[i];
    let o = out + i * 4u * plane;
    v[o] = r.x - r.z;
    v[o + plane] = r.y + r.z;
    v[o + 2u * plane] = r.z - r.y;
    v[o + 3u * plane] = r.y - r.w;
  }
}`,
    }),
);

/**
 * dM = A g A^T of every 2x2 tile of the output gradient: dy [N, C, H, W] (H, W: the output size) ->
 * dm [16, Cp, Tp]; positions outside the output count as zeros.
 */
export const winogradGradKernel = cachedKernel(
  (): Kernel =>
    makeKernel({
      key: 'winograd:grad',
      buffers: [readOnly('dy'), readWrite('dm')],
      uniforms: WINOGRAD_PLANE_UNIFORMS,
      workgroupSize: [WG, 1, 1],
      body: /* wgsl */ `${WINOGRAD_ENTRY}
  ${WINOGRAD_TILE_PROLOGUE}
  let oy = ty * 2u;
  let ox = tx * 2u;
  let base = (img * params.C + min(c, params.C - 1u)) * params.H * params.W;
  let yOk = valid && oy + 1u < params.H;
  let xOk = ox + 1u < params.W;
  let i00 = base + min(oy, params.H - 1u) * params.W + min(ox, params.W - 1u);
  let g00 = select(0.0, dy[i00], valid);
  let g01 = select(0.0, dy[i00 + select(0u, 1u, xOk)], valid && xOk);
  let g10 = select(0.0, dy[i00 + select(0u, params.W, yOk)], yOk);
  let g11 = select(0.0, dy[i00 + select(0u, params.W, yOk) + select(0u, 1u, xOk)], yOk && xOk);
  // Rows of A g (A = [1 0; 1 1; 1 -1; 0 -1]), then each row times A^T.
  let rows = array<vec2<f32>, 4>(vec2<f32>(g00, g01), vec2<f32>(g00 + g10, g01 + g11), vec2<f32>(g00 - g10, g01 - g11), vec2<f32>(-g10, -g11));
  let out = c * params.Tp + t;
  for (var i = 0u; i < 4u; i++) {
    let r = rows[i];
    let o = out + i * 4u * plane;
    dm[o] = r.x;
    dm[o + plane] = r.x + r.y;
    dm[o + 2u * plane] = r.x - r.y;
    dm[o + 3u * plane] = -r.y;
  }
}`,
    }),
);

/** y = A^T M A (+ bias[c]) of every tile: m [16, Cp, Tp] -> y [N, C, H, W] (H, W: the output size). */
export const winogradOutputKernel = cachedKernel(
  (bias: boolean): Kernel =>
    makeKernel({
      key: `winograd:output:${bias}`,
      buffers: [readOnly('m'), ...(bias ? [readOnly('bias')] : []), readWrite('y')],
      uniforms: WINOGRAD_PLANE_UNIFORMS,
      workgroupSize: [WG, 1, 1],
      body: /* wgsl */ `${WINOGRAD_ENTRY}
  ${WINOGRAD_TILE_PROLOGUE}
  if (!valid) { return; }
  let src = c * params.Tp + t;
  var q0 = vec4<f32>();
  var q1 = vec4<f32>();
  for (var i = 0u; i < 4u; i++) {
    let o = src + i * 4u * plane;
    let r = vec4<f32>(m[o], m[o + plane], m[o + 2u * plane], m[o + 3u * plane]);
    // Rows of A^T M: q0 = m0 + m1 + m2, q1 = m1 - m2 - m3.
    if (i == 0u) { q0 += r; }
    else if (i == 1u) { q0 += r; q1 += r; }
    else if (i == 2u) { q0 += r; q1 -= r; }
    else { q1 -= r; }
  }
  let b = ${bias ? 'bias[c]' : '0.0'};
  let oy = ty * 2u;
  let ox = tx * 2u;
  let base = ((img * params.C + c) * params.H + oy) * params.W + ox;
  let xOk = ox + 1u < params.W;
  y[base] = q0.x + q0.y + q0.z + b;
  if (xOk) { y[base + 1u] = q0.y - q0.z - q0.w + b; }
  if (oy + 1u < params.H) {
    y[base + params.W] = q1.x + q1.y + q1.z + b;
    if (xOk) { y[base + params.W + 1u] = q1.y - q1.z - q1.w + b; }
  }
}`,
    }),
);

/** Uniforms of the filter-side transforms (here and in winograd-f4.ts). */
export const WINOGRAD_FILTER_UNIFORMS = [
  { name: 'rows', type: 'u32' }, // rows of U (output channels of the product)
  { name: 'cols', type: 'u32' }, // columns of U that hold filters (channels summed over)
  { name: 'colsP', type: 'u32' }, // columns rounded up
] as const;

/**
 * Filter transforms: flat invocation -> (row r, column s) of U [rows, colsP], whether s holds a filter (`ok`),
 * and that filter's first weight index `src` (flip: w[s, r], for the input gradient). Here and in winograd-f4.ts.
 */
export const winogradFilterPrologue = (flip: boolean) => /* wgsl */ `
  let id = flatGroup(wid, nwg) * ${WG}u + lid.x;
  if (id >= params.rows * params.colsP) { return; }
  let r = id / params.colsP;
  let s = id % params.colsP;
  let plane = params.rows * params.colsP;
  let ok = s < params.cols;
  let src = ${flip ? '(min(s, params.cols - 1u) * params.rows + r) * 9u' : '(r * params.cols + min(s, params.cols - 1u)) * 9u'};`;

/** Filter-gradient transforms: flat invocation -> (r, s) of dw [rows, cols] and its first dU element `src`. */
export const WINOGRAD_FILTER_GRAD_PROLOGUE = /* wgsl */ `
  let id = flatGroup(wid, nwg) * ${WG}u + lid.x;
  if (id >= params.rows * params.cols) { return; }
  let r = id / params.cols;
  let s = id % params.cols;
  let plane = params.rows * params.colsP;
  let src = r * params.colsP + s;`;

/**
 * U = G w G^T: w [Cout, Cin, 3, 3] -> u [16, rows, colsP]. Not flipped: rows = Cout, cols = Cin (the
 * forward). Flipped: rows = Cin, cols = Cout, filter (r, s) = w[s, r] rotated by 180 degrees (the input
 * gradient as a forward product on dy).
 */
export const winogradFilterKernel = cachedKernel(
  (flip: boolean): Kernel =>
    makeKernel({
      key: `winograd:filter:${flip}`,
      buffers: [readOnly('w'), readWrite('u')],
      uniforms: WINOGRAD_FILTER_UNIFORMS,
      workgroupSize: [WG, 1, 1],
      body: /* wgsl */ `${WINOGRAD_ENTRY}
  ${winogradFilterPrologue(flip)}
  var g: array<vec3<f32>, 3>;
  for (var i = 0u; i < 3u; i++) {
    ${
      flip
        ? 'g[i] = vec3<f32>(w[src + 8u - 3u * i], w[src + 7u - 3u * i], w[src + 6u - 3u * i]);'
        : 'g[i] = vec3<f32>(w[src + 3u * i], w[src + 3u * i + 1u], w[src + 3u * i + 2u]);'
    }
    g[i] = select(vec3<f32>(), g[i], ok);
  }
  // Rows of G g, then each row times G^T.
  let rows = array<vec3<f32>, 4>(g[0], 0.5 * (g[0] + g[1] + g[2]), 0.5 * (g[0] - g[1] + g[2]), g[2]);
  let out = r * params.colsP + s;
  for (var i = 0u; i < 4u; i++) {
    let h = rows[i];
    let o = out + i * 4u * plane;
    u[o] = h.x;
    u[o + plane] = 0.5 * (h.x + h.y + h.z);
    u[o + 2u * plane] = 0.5 * (h.x - h.y + h.z);
    u[o + 3u * plane] = h.z;
  }
}`,
    }),
);

/** dw = G^T dU G: du [16, rows, colsP] -> dw [rows, cols, 3, 3] (rows = Cout, cols = Cin). */
export const winogradFilterGradKernel = cachedKernel(
  (): Kernel =>
    makeKernel({
      key: 'winograd:filtergrad',
      buffers: [readOnly('du'), readWrite('dw')],
      uniforms: WINOGRAD_FILTER_UNIFORMS,
      workgroupSize: [WG, 1, 1],
      body: /* wgsl */ `${WINOGRAD_ENTRY}
  ${WINOGRAD_FILTER_GRAD_PROLOGUE}
  var q0 = vec4<f32>();
  var q1 = vec4<f32>();
  var q2 = vec4<f32>();
  for (var i = 0u; i < 4u; i++) {
    let o = src + i * 4u * plane;
    let m = vec4<f32>(du[o], du[o + plane], du[o + 2u * plane], du[o + 3u * plane]);
    // Rows of G^T dU (G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]).
    if (i == 0u) { q0 += m; }
    else if (i == 1u) { q0 += 0.5 * m; q1 += 0.5 * m; q2 += 0.5 * m; }
    else if (i == 2u) { q0 += 0.5 * m; q1 -= 0.5 * m; q2 += 0.5 * m; }
    else { q2 += m; }
  }
  let rows = array<vec4<f32>, 3>(q0, q1, q2);
  let out = id * 9u;
  for (var i = 0u; i < 3u; i++) {
    let q = rows[i];
    dw[out + 3u * i] = q.x + 0.5 * (q.y + q.z);
    dw[out + 3u * i + 1u] = 0.5 * (q.y - q.z);
    dw[out + 3u * i + 2u] = 0.5 * (q.y + q.z) + q.w;
  }
}`,
    }),
);
