import { cachedKernel, fields, flatKernel, type Grid, grid1d, gridGroups, type Kernel, readOnly, readWrite } from './kernel.js';

/**
 * Normalisation over contiguous rows (GroupNorm: a row is one (image, group); LayerNorm: one token).
 * An optional per-channel affine is indexed p = (i / inner) % P within the tensor: GroupNorm has
 * (inner, P) = (H*W, C), LayerNorm (1, L).
 *
 * - rowMoments:      stats[r] = (mean, 1 / sqrt(var + eps)), var biased, two passes for precision; in 'group'
 *                    mode (long rows) each invocation sums in chunks (chunkedSum), so rows of millions keep float32 accuracy
 * - normApply:       y = (x - mean) * rstd (* w[p] + b[p])
 * - normGradSums:    sums[r] = (sum g*w, sum g*w*xhat) over the row
 * - normGradInput:   dx = rstd * (g*w - sum1/L - xhat * sum2/L)
 */
const WG = 64;
/** Elementwise passes (normalise, gradients): one invocation per element. */
const ELEM_WG = 256;

const treeSum = (target: string) => `
    scratch[lid] = acc;
    workgroupBarrier();
    for (var s = ${WG / 2}u; s > 0u; s = s / 2u) {
      if (lid < s) { scratch[lid] = scratch[lid] + scratch[lid + s]; }
      workgroupBarrier();
    }
    ${target} = scratch[0];
    workgroupBarrier();`;

/**
 * Sums value(r) for r = lid, lid + WG, ... < end into `acc` in chunks of 32 values per invocation, so a long row's
 * error grows with about n / 32 + 32 additions per invocation instead of n (rows of 4M values: 9e-6 -> 1.6e-6 from
 * PyTorch, normalised) at the cost of a plain loop (the three-level blockedSum of the reductions was measurably
 * slower here, and GroupNorm is on every UNet block's path).
 */
const chunkedSum = (value: string, end: string) => `for (var r0 = lid; r0 < ${end}; r0 += ${32 * WG}u) {
      var part = 0.0; let e0 = min(r0 + ${32 * WG}u, ${end});
      for (var r = r0; r < e0; r += ${WG}u) { part += ${value}; }
      acc += part;
    }`;

const ROW_PROLOGUE = /* wgsl */ `
var<workgroup> scratch: array<f32, ${WG}>;
fn sqdev(v: f32, m: f32) -> f32 { let d = v - m; return d * d; }
fn sqdev4(v: vec4<f32>, m: f32) -> f32 { let d = v - vec4<f32>(m); return dot(d, d); }`;

/**
 * 'group': a workgroup per row, combining in workgroup memory (long rows, few of them: GroupNorm).
 * 'thread': an invocation per row, no barriers (many short rows: LayerNorm over tokens).
 */
export type NormRowMode = 'group' | 'thread';

export const chooseNormMode = (rows: number, L: number): NormRowMode => (rows >= 256 && L <= 1024 ? 'thread' : 'group');

const THREAD_ROWS = 64;

/** Row statistics with one invocation per row. */
const threadMoments = (): Kernel =>
  flatKernel({
    key: 'norm:moments:thread',
    buffers: [readOnly('x'), readWrite('stats')],
    uniforms: [...fields('u32', 'rows', 'L'), { name: 'eps', type: 'f32' }],
    workgroupSize: THREAD_ROWS, index: 'row', bound: 'params.rows',
    body: /* wgsl */ `
  let base = row * params.L;
  var mean = 0.0;
  for (var i = 0u; i < params.L; i++) { mean += x[base + i]; }
  mean = mean / f32(params.L);
  var variance = 0.0;
  for (var i = 0u; i < params.L; i++) { let d = x[base + i] - mean; variance += d * d; }
  stats[2u * row] = mean;
  stats[2u * row + 1u] = inverseSqrt(variance / f32(params.L) + params.eps);`,
  });

/**
 * `vec` (rows of a multiple of 4 values): x is read as vec4, a quarter of the loads; on CPU adapters every
 * per-invocation load is a loop over the SIMD lanes, so this is what sets the speed.
 */
export const rowMomentsKernel = cachedKernel((mode: NormRowMode = 'group', vec = false): Kernel =>
  mode === 'thread' ? threadMoments() : flatKernel({
    key: `norm:moments:${vec}`,
    buffers: [readOnly('x', vec ? 'vec4<f32>' : 'f32'), readWrite('stats')],
    uniforms: [...fields('u32', 'rows', 'L'), { name: 'eps', type: 'f32' }],
    workgroupSize: WG, per: 'workgroup', index: 'row', bound: 'params.rows',
    helpers: ROW_PROLOGUE,
    body: /* wgsl */ `
  let base = row * params.L;
  var mean: f32;
  var variance: f32;
  {
    var acc = 0.0;
    ${vec ? chunkedSum('dot(x[base / 4u + r], vec4<f32>(1.0))', 'params.L / 4u') : chunkedSum('x[base + r]', 'params.L')}
    ${treeSum('mean')}
  }
  mean = mean / f32(params.L);
  {
    var acc = 0.0;
    ${vec ? chunkedSum('sqdev4(x[base / 4u + r], mean)', 'params.L / 4u') : chunkedSum('sqdev(x[base + r], mean)', 'params.L')}
    ${treeSum('variance')}
  }
  if (lid == 0u) {
    stats[2u * row] = mean;
    stats[2u * row + 1u] = inverseSqrt(variance / f32(params.L) + params.eps);
  }`,
  }),
);

const AFFINE_UNIFORMS = fields('u32', 'n', 'L', 'inner', 'P');

/**
 * `vec` (L and inner multiples of 4): each invocation normalises 4 consecutive values, which share their row
 * and channel, so x and y move as vec4 and the statistics and affine are loaded once for all four.
 */
export const normApplyKernel = cachedKernel((affine: boolean, silu = false, vec = false): Kernel => {
  const t = vec ? 'vec4<f32>' : 'f32';
  return flatKernel({
    key: `norm:apply:${affine}:${silu}:${vec}`,
    buffers: [
      readOnly('x', t),
      readOnly('stats'),
      ...(affine ? [readOnly('w'), readOnly('b')] : []),
      readWrite('y', t),
    ],
    uniforms: AFFINE_UNIFORMS,
    workgroupSize: ELEM_WG, index: 'e', bound: null,
    body: /* wgsl */ `
  ${vec ? 'let i = 4u * e;' : 'let i = e;'}
  if (i >= params.n) { return; }
  let r = i / params.L;
  let xhat = (x[e] - ${t}(stats[2u * r])) * stats[2u * r + 1u];
  ${affine ? 'let p = (i / params.inner) % params.P;\n  let z = xhat * w[p] + b[p];' : 'let z = xhat;'}
  y[e] = ${silu ? `z / (${t}(1.0) + exp(-z))` : 'z'};`,
  });
});

/** The gradient through a fused SiLU: g * silu'(z), z = xhat * w + b recomputed from the statistics. */
export const normSiluGradKernel = cachedKernel((affine: boolean): Kernel =>
  flatKernel({
    key: `norm:silugrad:${affine}`,
    buffers: [
      readOnly('x'),
      readOnly('g'),
      readOnly('stats'),
      ...(affine ? [readOnly('w'), readOnly('b')] : []),
      readWrite('gz'),
    ],
    uniforms: AFFINE_UNIFORMS,
    workgroupSize: ELEM_WG,
    body: /* wgsl */ `
  let r = i / params.L;
  let xhat = (x[i] - stats[2u * r]) * stats[2u * r + 1u];
  ${affine ? 'let p = (i / params.inner) % params.P;\n  let z = xhat * w[p] + b[p];' : 'let z = xhat;'}
  let s = 1.0 / (1.0 + exp(-z));
  gz[i] = g[i] * s * (1.0 + z * (1.0 - s));`,
  }),
);

/** Per-row gradient sums with one invocation per row. */
const threadGradSums = (affine: boolean): Kernel =>
  flatKernel({
    key: `norm:gradsums:thread:${affine}`,
    buffers: [readOnly('x'), readOnly('g'), readOnly('stats'), ...(affine ? [readOnly('w')] : []), readWrite('sums')],
    uniforms: [{ name: 'rows', type: 'u32' }, ...AFFINE_UNIFORMS],
    workgroupSize: THREAD_ROWS, index: 'row', bound: 'params.rows',
    body: /* wgsl */ `
  let base = row * params.L;
  let mean = stats[2u * row];
  let rstd = stats[2u * row + 1u];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var j = 0u; j < params.L; j++) {
    let i = base + j;
    let gw = g[i]${affine ? ' * w[(i / params.inner) % params.P]' : ''};
    s1 += gw;
    s2 += gw * (x[i] - mean) * rstd;
  }
  sums[2u * row] = s1;
  sums[2u * row + 1u] = s2;`,
  });

/** `vec`: as normApply's (L and, with an affine, inner multiples of 4): g and x read as vec4. */
export const normGradSumsKernel = cachedKernel((affine: boolean, mode: NormRowMode = 'group', vec = false): Kernel => {
  if (mode === 'thread') return threadGradSums(affine);
  const t = vec ? 'vec4<f32>' : 'f32';
  const w = affine ? ' * w[(i / params.inner) % params.P]' : '';
  const loop = vec
    ? `for (var j = lid; j < params.L / 4u; j += ${WG}u) {
    let i = base + 4u * j;
    let gw = g[i / 4u]${w};
    acc += (gw.x + gw.y) + (gw.z + gw.w);
    acc2 += dot(gw, (x[i / 4u] - vec4<f32>(mean)) * rstd);
  }`
    : `for (var j = lid; j < params.L; j += ${WG}u) {
    let i = base + j;
    let gw = g[i]${w};
    acc += gw;
    acc2 += gw * (x[i] - mean) * rstd;
  }`;
  return flatKernel({
    key: `norm:gradsums:${affine}:${vec}`,
    buffers: [
      readOnly('x', t),
      readOnly('g', t),
      readOnly('stats'),
      ...(affine ? [readOnly('w')] : []),
      readWrite('sums'),
    ],
    uniforms: [{ name: 'rows', type: 'u32' }, ...AFFINE_UNIFORMS],
    workgroupSize: WG, per: 'workgroup', index: 'row', bound: 'params.rows',
    helpers: ROW_PROLOGUE,
    body: /* wgsl */ `
  let base = row * params.L;
  let mean = stats[2u * row];
  let rstd = stats[2u * row + 1u];
  var s1: f32;
  var s2: f32;
  var acc = 0.0;
  var acc2 = 0.0;
  ${loop}
  ${treeSum('s1')}
  acc = acc2;
  ${treeSum('s2')}
  if (lid == 0u) {
    sums[2u * row] = s1;
    sums[2u * row + 1u] = s2;
  }`,
  });
});

/** `vec`: four consecutive values per invocation (same row and channel), g, x and dx as vec4. */
export const normGradInputKernel = cachedKernel((affine: boolean, vec = false): Kernel => {
  const t = vec ? 'vec4<f32>' : 'f32';
  return flatKernel({
    key: `norm:gradinput:${affine}:${vec}`,
    buffers: [
      readOnly('x', t),
      readOnly('g', t),
      readOnly('stats'),
      readOnly('sums'),
      ...(affine ? [readOnly('w')] : []),
      readWrite('dx', t),
    ],
    uniforms: AFFINE_UNIFORMS,
    workgroupSize: ELEM_WG, index: 'e', bound: null,
    body: /* wgsl */ `
  let i = ${vec ? '4u * e' : 'e'};
  if (i >= params.n) { return; }
  let r = i / params.L;
  let rstd = stats[2u * r + 1u];
  let xhat = (x[e] - ${t}(stats[2u * r])) * rstd;
  let gw = g[e]${affine ? ' * w[(i / params.inner) % params.P]' : ''};
  let invL = 1.0 / f32(params.L);
  dx[e] = rstd * (gw - ${t}(sums[2u * r] * invL) - xhat * (sums[2u * r + 1u] * invL));`,
  });
});

export const normRowGrid = (rows: number, mode: NormRowMode = 'group'): Grid => (mode === 'thread' ? grid1d(rows, THREAD_ROWS) : gridGroups(rows));
export const normElementGrid = (n: number): Grid => grid1d(n, 256);
