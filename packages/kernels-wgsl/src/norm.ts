import {
  cachedKernel,
  fields,
  flatKernel,
  type Grid,
  grid1d,
  gridGroups,
  type Kernel,
  lanesKey,
  readOnly,
  readWrite,
  type RowLanes,
} from './kernel.js';
import { blockedSum } from './reduce.js';

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
 * - layerNormAffineGrad: LayerNorm's dw and db, one invocation per parameter summing over the rows
 * - layerNormThreadForward / layerNormThreadBackward: LayerNorm's short rows ('thread' mode), statistics and
 *                    output, or row sums and dx, in one dispatch with an invocation per row
 *
 * GroupNorm's forward with long rows (the usual case) takes one dispatch (groupNormForward: statistics, then
 * normalise, affine and optional SiLU in the same workgroup). Its backward takes three passes instead
 * (channelGradSums, channelGradCombine, normGradInput): the per-(image, channel) sums give the affine gradients
 * and the row sums at once, and a fused SiLU's gradient is recomputed from x in both full passes rather than
 * stored; with long channel runs, groupNormBackward does the first and last of them in one dispatch.
 */
const WG = 64;
/** Elementwise passes (normalise, gradients): one invocation per element. */
const ELEM_WG = 256;

const treeSum = (target: string, lanes: RowLanes) => `
    scratch[lid] = acc;
    workgroupBarrier();
    for (var s = ${lanes / 2}u; s > 0u; s = s / 2u) {
      if (lid < s) { scratch[lid] = scratch[lid] + scratch[lid + s]; }
      workgroupBarrier();
    }
    ${target} = scratch[0];
    workgroupBarrier();`;

/** Combines the invocations' (acc, acc2) over the workgroup and stores the two totals at out[2 idx], out[2 idx + 1]. */
const storePairSum = (out: string, idx: string, lanes: RowLanes) => `
  var s1: f32;
  var s2: f32;
  ${treeSum('s1', lanes)}
  acc = acc2;
  ${treeSum('s2', lanes)}
  if (lid == 0u) {
    ${out}[2u * ${idx}] = s1;
    ${out}[2u * ${idx} + 1u] = s2;
  }`;

/**
 * Runs `body` for r = lid, lid + lanes, ... < end, which adds to `<acc>_part` for each accumulator in `accs`; the
 * parts are folded in chunks of 32 values per invocation into `<acc>_mid`, and those in blocks of 32 chunks into
 * the accumulators, so a long row's error grows with about n / 1024 + 64 additions per invocation instead of n
 * (rows of 4M values, 8 invocations each: 1.9e-5 from PyTorch, normalised, with one level of chunks; within 4e-6
 * with two) at the cost of plain loops (the three-level blockedSum of the reductions was measurably slower here,
 * and GroupNorm is on every UNet block's path).
 */
const chunkedSums = (
  end: string,
  accs: readonly string[],
  body: string,
  lanes: RowLanes,
) => `for (var r1 = lid; r1 < ${end}; r1 += ${1024 * lanes}u) {
      ${accs.map((a) => `var ${a}_mid = 0.0;`).join(' ')} let e1 = min(r1 + ${1024 * lanes}u, ${end});
      for (var r0 = r1; r0 < e1; r0 += ${32 * lanes}u) {
        ${accs.map((a) => `var ${a}_part = 0.0;`).join(' ')} let e0 = min(r0 + ${32 * lanes}u, e1);
        for (var r = r0; r < e0; r += ${lanes}u) { ${body} }
        ${accs.map((a) => `${a}_mid += ${a}_part;`).join(' ')}
      }
      ${accs.map((a) => `${a} += ${a}_mid;`).join(' ')}
    }`;
const chunkedSum = (value: string, end: string, lanes: RowLanes) =>
  chunkedSums(end, ['acc'], `acc_part += ${value};`, lanes);

const rowPrologue = (lanes: RowLanes) => /* wgsl */ `
var<workgroup> scratch: array<f32, ${lanes}>;
fn sqdev(v: f32, m: f32) -> f32 { let d = v - m; return d * d; }
fn sqdev4(v: vec4<f32>, m: f32) -> f32 { let d = v - vec4<f32>(m); return dot(d, d); }`;

/**
 * 'group': a workgroup per row, combining in workgroup memory (long rows, few of them: GroupNorm).
 * 'thread': an invocation per row, no barriers (many short rows: LayerNorm over tokens).
 */
export type NormRowMode = 'group' | 'thread';

/**
 * 'thread' for many rows, and for rows of at most one workgroup's width (LayerNorm over a few dozen channels),
 * where a workgroup per row would leave its invocations nearly idle and pay its barriers for one value each.
 */
export const chooseNormMode = (rows: number, L: number): NormRowMode =>
  (rows >= 256 || L <= WG) && L <= 1024 ? 'thread' : 'group';

const THREAD_ROWS = 64;

/** Row statistics with one invocation per row. */
const threadMoments = (): Kernel =>
  flatKernel({
    key: 'norm:moments:thread',
    buffers: [readOnly('x'), readWrite('stats')],
    uniforms: [...fields('u32', 'rows', 'L'), { name: 'eps', type: 'f32' }],
    workgroupSize: THREAD_ROWS,
    index: 'row',
    bound: 'params.rows',
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

/** A kernel with a workgroup of `lanes` invocations per row `row`. */
const perRow = (lanes: RowLanes) =>
  ({
    workgroupSize: lanes,
    per: 'workgroup',
    index: 'row',
    bound: 'params.rows',
    helpers: rowPrologue(lanes),
  }) as const;
const EPS_UNIFORM = { name: 'eps', type: 'f32' } as const;

/**
 * A workgroup's two-pass statistics of row `row`: declares `base` (its first element), `mean` and `rstd` and
 * stores them in stats. `vec`: x is bound as vec4 (L a multiple of 4).
 */
const groupMomentsWgsl = (vec: boolean, lanes: RowLanes) => /* wgsl */ `
  let base = row * params.L;
  var mean: f32;
  var variance: f32;
  {
    var acc = 0.0;
    ${vec ? chunkedSum('dot(x[base / 4u + r], vec4<f32>(1.0))', 'params.L / 4u', lanes) : chunkedSum('x[base + r]', 'params.L', lanes)}
    ${treeSum('mean', lanes)}
  }
  mean = mean / f32(params.L);
  {
    var acc = 0.0;
    ${vec ? chunkedSum('sqdev4(x[base / 4u + r], mean)', 'params.L / 4u', lanes) : chunkedSum('sqdev(x[base + r], mean)', 'params.L', lanes)}
    ${treeSum('variance', lanes)}
  }
  let rstd = inverseSqrt(variance / f32(params.L) + params.eps);
  if (lid == 0u) {
    stats[2u * row] = mean;
    stats[2u * row + 1u] = rstd;
  }`;

/** The normalised value with the optional affine and SiLU: `xhat` and the affine's `wv`, `bv` in scope. */
const normOutputWgsl = (t: string, affine: boolean, silu: boolean) => `
  let z = ${affine ? 'xhat * wv + bv' : 'xhat'};
  let yv = ${silu ? `z / (${t}(1.0) + exp(-z))` : 'z'};`;

/**
 * `vec` (rows of a multiple of 4 values): x is read as vec4, a quarter of the loads; on CPU adapters every
 * per-invocation load is a loop over the SIMD lanes, so this is what sets the speed.
 */
export const rowMomentsKernel = cachedKernel(
  (mode: NormRowMode = 'group', vec: boolean = false, lanes: RowLanes = 64): Kernel =>
    mode === 'thread'
      ? threadMoments()
      : flatKernel({
          key: `norm:moments:${vec}${lanesKey(lanes)}`,
          buffers: [readOnly('x', vec ? 'vec4<f32>' : 'f32'), readWrite('stats')],
          uniforms: [...fields('u32', 'rows', 'L'), EPS_UNIFORM],
          ...perRow(lanes),
          body: groupMomentsWgsl(vec, lanes),
        }),
);

/**
 * GroupNorm's forward in one dispatch: a workgroup per (image, group) row takes the row's statistics as
 * rowMoments does (the same sums in the same order), stores them for the backward, then normalises the row
 * channel run by channel run, so each channel's weight and bias are loaded once per run instead of once per
 * value, and the row is re-read while it is still in the cache. The row holds L / inner channel runs; the
 * channel of run j is (row * L / inner + j) % P. `vec`: inner a multiple of 4, x and y as vec4.
 */
export const groupNormForwardKernel = cachedKernel(
  (affine: boolean, silu: boolean = false, vec: boolean = false, lanes: RowLanes = 64): Kernel => {
    const t = vec ? 'vec4<f32>' : 'f32';
    return flatKernel({
      key: `norm:groupfwd:${affine}:${silu}:${vec}${lanesKey(lanes)}`,
      buffers: [
        readOnly('x', t),
        ...(affine ? [readOnly('w'), readOnly('b')] : []),
        readWrite('y', t),
        readWrite('stats'),
      ],
      uniforms: [...fields('u32', 'rows', 'L', 'inner', 'P'), EPS_UNIFORM],
      ...perRow(lanes),
      body: /* wgsl */ `
  ${groupMomentsWgsl(vec, lanes)}
  let runs = params.L / params.inner;
  let run = ${vec ? 'params.inner / 4u' : 'params.inner'};
  for (var j = 0u; j < runs; j++) {
    ${affine ? 'let p = (row * runs + j) % params.P;\n    let wv = w[p];\n    let bv = b[p];' : ''}
    let start = ${vec ? '(base + j * params.inner) / 4u' : 'base + j * params.inner'};
    for (var r = lid; r < run; r += ${lanes}u) {
      let e = start + r;
      let xhat = (x[e] - ${t}(mean)) * rstd;
      ${normOutputWgsl(t, affine, silu)}
      y[e] = yv;
    }
  }`,
    });
  },
);

const AFFINE_UNIFORMS = fields('u32', 'n', 'L', 'inner', 'P');

/**
 * `vec` (L and inner multiples of 4): each invocation normalises 4 consecutive values, which share their row
 * and channel, so x and y move as vec4 and the statistics and affine are loaded once for all four.
 */
export const normApplyKernel = cachedKernel(
  (affine: boolean, silu: boolean = false, vec: boolean = false, laneParams: boolean = false): Kernel => {
    const t = vec ? 'vec4<f32>' : 'f32';
    const pt = laneParamType(vec, laneParams);
    return flatKernel({
      key: `norm:apply:${affine}:${silu}:${vec}${laneParams ? ':lanes' : ''}`,
      buffers: [
        readOnly('x', t),
        readOnly('stats'),
        ...(affine ? [readOnly('w', pt), readOnly('b', pt)] : []),
        readWrite('y', t),
      ],
      uniforms: AFFINE_UNIFORMS,
      workgroupSize: ELEM_WG,
      index: 'e',
      bound: null,
      body: /* wgsl */ `
  ${vec ? 'let i = 4u * e;' : 'let i = e;'}
  if (i >= params.n) { return; }
  let r = i / params.L;
  let xhat = (x[e] - ${t}(stats[2u * r])) * stats[2u * r + 1u];
  ${affine ? `let p = (i / params.inner) % params.P;\n  let wv = w[${paramIndex(laneParams)}];\n  let bv = b[${paramIndex(laneParams)}];` : ''}
  ${normOutputWgsl(t, affine, silu)}
  y[e] = yv;`,
    });
  },
);

/**
 * `laneParams` (with `vec`; LayerNorm's per-value affine: inner 1, P a multiple of 4): the four values of an
 * invocation have four consecutive parameters, read as one vec4 at p / 4, instead of sharing one.
 */
const laneParamType = (vec: boolean, laneParams: boolean) => {
  if (laneParams && !vec) throw new Error('norm kernels: laneParams needs the vec4 variant');
  return laneParams ? 'vec4<f32>' : 'f32';
};
const paramIndex = (laneParams: boolean) => (laneParams ? 'p / 4u' : 'p');

/** g * silu'(z) with z = xhat * w + b: the gradient through a fused SiLU, recomputed from x. */
const siluGradWgsl = (t: string, g: string, affine: boolean, wv: string, bv: string) => `
  let z = ${affine ? `xhat * ${wv} + ${t}(${bv})` : 'xhat'};
  let sg = ${t}(1.0) / (${t}(1.0) + exp(-z));
  let gz = ${g} * sg * (${t}(1.0) + z * (${t}(1.0) - sg));`;

const CHANNEL_UNIFORMS = fields('u32', 'segs', 'inner', 'C', 'Cg');

/**
 * GroupNorm backward, pass 1: a workgroup per (image, channel) run of `inner` values (segment s = n * C + c,
 * in row s / Cg) sums gz and gz * xhat, where gz is g, or g * silu'(z) with a fused SiLU. `vec`: inner a
 * multiple of 4, x and g read as vec4. `mode` 'thread' (chooseChannelSumsMode): an invocation per segment.
 */
export const channelGradSumsKernel = cachedKernel(
  (silu: boolean, affine: boolean, vec: boolean = false, mode: NormRowMode = 'group', lanes: RowLanes = 64): Kernel =>
    mode === 'thread' ? threadChannelGradSums(silu, affine, vec) : groupChannelGradSums(silu, affine, vec, lanes),
);

/**
 * 'thread' when a segment holds at most one value (vec4 with `vec`) per invocation of a workgroup: the
 * workgroup would then load one value each and spend its time in the barriers of its tree sums (the 4x3 to
 * 16x12 maps of a small UNet: up to 256 workgroups for a few thousand values).
 */
export const chooseChannelSumsMode = (inner: number, vec: boolean): NormRowMode =>
  (vec ? inner / 4 : inner) <= WG ? 'thread' : 'group';

export const channelGradSumsGrid = (segs: number, mode: NormRowMode): Grid =>
  mode === 'thread' ? grid1d(segs, WG) : gridGroups(segs);

/** Pass 1's bindings: x and g (`t`: f32 or vec4), the row statistics, the SiLU's affine, the sums. */
const channelSumsBuffers = (t: string, silu: boolean, affine: boolean) => [
  readOnly('x', t),
  readOnly('g', t),
  readOnly('stats'),
  ...(silu && affine ? [readOnly('w'), readOnly('b')] : []),
  readWrite('parts'),
];

/** Segment `seg`'s row statistics `mean` and `rstd`, and with a fused SiLU's affine its channel's `wc`, `bc`. */
const segmentPrologueWgsl = (t: string, silu: boolean, affine: boolean) => `
  let row = seg / params.Cg;
  let mean = ${t}(stats[2u * row]);
  let rstd = stats[2u * row + 1u];
  ${silu && affine ? 'let wc = w[seg % params.C];\n  let bc = b[seg % params.C];' : ''}`;

/** Pass 1 with an invocation per segment, summing its run in order. */
const threadChannelGradSums = (silu: boolean, affine: boolean, vec: boolean): Kernel => {
  const t = vec ? 'vec4<f32>' : 'f32';
  const len = vec ? 'params.inner / 4u' : 'params.inner';
  return flatKernel({
    key: `norm:chansums:thread:${silu}:${affine}:${vec}`,
    buffers: channelSumsBuffers(t, silu, affine),
    uniforms: CHANNEL_UNIFORMS,
    workgroupSize: WG,
    index: 'seg',
    bound: 'params.segs',
    body: /* wgsl */ `
${segmentPrologueWgsl(t, silu, affine)}
  let base = seg * ${len};
  var acc = 0.0;
  var acc2 = 0.0;
  for (var r = 0u; r < ${len}; r++) {
    let xhat = (x[base + r] - mean) * rstd;
    ${silu ? siluGradWgsl(t, 'g[base + r]', affine, 'wc', 'bc') : 'let gz = g[base + r];'}
    acc += ${vec ? 'dot(gz, vec4<f32>(1.0))' : 'gz'};
    acc2 += ${vec ? 'dot(gz, xhat)' : 'gz * xhat'};
  }
  parts[2u * seg] = acc;
  parts[2u * seg + 1u] = acc2;`,
  });
};

const groupChannelGradSums = (silu: boolean, affine: boolean, vec: boolean, lanes: RowLanes): Kernel => {
  const t = vec ? 'vec4<f32>' : 'f32';
  return flatKernel({
    key: `norm:chansums:${silu}:${affine}:${vec}${lanesKey(lanes)}`,
    buffers: channelSumsBuffers(t, silu, affine),
    uniforms: CHANNEL_UNIFORMS,
    workgroupSize: lanes,
    per: 'workgroup',
    index: 'seg',
    bound: 'params.segs',
    helpers: rowPrologue(lanes),
    body: /* wgsl */ `
${segmentPrologueWgsl(t, silu, affine)}
  ${segmentSumsWgsl(silu, affine, vec, lanes)}`,
  });
};

/**
 * Pass 1's sums of segment `seg` (`mean`, `rstd` and, with a fused SiLU and an affine, `wc`, `bc` in scope):
 * stores them at parts[2 seg], parts[2 seg + 1] and leaves them in `s1`, `s2` for every invocation.
 */
function segmentSumsWgsl(silu: boolean, affine: boolean, vec: boolean, lanes: RowLanes): string {
  const t = vec ? 'vec4<f32>' : 'f32';
  return /* wgsl */ `
  let base = seg * ${vec ? 'params.inner / 4u' : 'params.inner'};
  var acc = 0.0;
  var acc2 = 0.0;
  ${chunkedSums(
    vec ? 'params.inner / 4u' : 'params.inner',
    ['acc', 'acc2'],
    `
        let xhat = (x[base + r] - mean) * rstd;
        ${silu ? siluGradWgsl(t, 'g[base + r]', affine, 'wc', 'bc') : 'let gz = g[base + r];'}
        acc_part += ${vec ? 'dot(gz, vec4<f32>(1.0))' : 'gz'};
        acc2_part += ${vec ? 'dot(gz, xhat)' : 'gz * xhat'};`,
    lanes,
  )}
  ${storePairSum('parts', 'seg', lanes)}`;
}

/**
 * GroupNorm's backward pass 1 and the input gradient in one dispatch, a workgroup per (image, group) row: per
 * channel run, pass 1's sums (stored for the affine gradients, which pass 2 still combines over images) and
 * their weighted row totals in pass 2's order; then dx run by run as normGradInput computes it, with the
 * statistics, row sums, weight and bias held per run instead of loaded per value. The same sums and
 * expressions as the three-pass path, so the same results.
 */
export const groupNormBackwardKernel = cachedKernel(
  (silu: boolean, affine: boolean, vec: boolean = false, lanes: RowLanes = 64): Kernel => {
    const t = vec ? 'vec4<f32>' : 'f32';
    return flatKernel({
      key: `norm:groupbwd:${silu}:${affine}:${vec}${lanesKey(lanes)}`,
      buffers: [
        readOnly('x', t),
        readOnly('g', t),
        readOnly('stats'),
        ...(affine ? [readOnly('w')] : []),
        ...(silu && affine ? [readOnly('b')] : []),
        readWrite('parts'),
        readWrite('dx', t),
      ],
      uniforms: [...fields('u32', 'rows', 'inner', 'C', 'Cg')],
      ...perRow(lanes),
      body: /* wgsl */ `
  let mean = ${t}(stats[2u * row]);
  let rstd = stats[2u * row + 1u];
  var rs1 = 0.0;
  var rs2 = 0.0;
  for (var j = 0u; j < params.Cg; j++) {
    let seg = row * params.Cg + j;
    let wc = ${affine ? 'w[seg % params.C]' : '1.0'};
    ${silu && affine ? 'let bc = b[seg % params.C];' : ''}
    ${segmentSumsWgsl(silu, affine, vec, lanes)}
    rs1 += wc * s1;
    rs2 += wc * s2;
  }
  let invL = 1.0 / f32(params.Cg * params.inner);
  let run = ${vec ? 'params.inner / 4u' : 'params.inner'};
  for (var j = 0u; j < params.Cg; j++) {
    let seg = row * params.Cg + j;
    ${affine ? 'let wc = w[seg % params.C];' : ''}
    ${silu && affine ? 'let bc = b[seg % params.C];' : ''}
    for (var r = lid; r < run; r += ${lanes}u) {
      let e = seg * run + r;
      let xhat = (x[e] - mean) * rstd;
      ${silu ? siluGradWgsl(t, 'g[e]', affine, 'wc', 'bc') : 'let gz = g[e];'}
      let gw = gz${affine ? ' * wc' : ''};
      dx[e] = rstd * (gw - ${t}(rs1 * invL) - xhat * (rs2 * invL));
    }
  }`,
    });
  },
);

/**
 * GroupNorm backward, pass 2, from pass 1's (sum gz, sum gz * xhat) per segment: invocations below `rows` write
 * the row sums (sum w gz, sum w gz xhat) over the row's Cg channels; with an affine, the next C invocations
 * write db[c] = sum over images of sum gz and dw[c] = sum over images of sum gz * xhat. `rowSums` false: the
 * affine gradients only (rows 0; groupNormBackward took the row sums itself).
 */
export const channelGradCombineKernel = cachedKernel((affine: boolean, rowSums: boolean = true): Kernel => {
  if (!rowSums && !affine) throw new Error('channelGradCombine: nothing to combine');
  return flatKernel({
    key: `norm:chancombine:${affine}${rowSums ? '' : ':affine-only'}`,
    buffers: [
      readOnly('parts'),
      ...(rowSums && affine ? [readOnly('w')] : []),
      ...(rowSums ? [readWrite('sums')] : []),
      ...(affine ? [readWrite('dw'), readWrite('db')] : []),
    ],
    uniforms: fields('u32', 'n', 'rows', 'images', 'C', 'Cg'),
    workgroupSize: WG,
    body: /* wgsl */ `${
      rowSums
        ? `
  if (i < params.rows) {
    var s1 = 0.0;
    var s2 = 0.0;
    for (var j = 0u; j < params.Cg; j++) {
      let seg = i * params.Cg + j;
      let wc = ${affine ? 'w[seg % params.C]' : '1.0'};
      s1 += wc * parts[2u * seg];
      s2 += wc * parts[2u * seg + 1u];
    }
    sums[2u * i] = s1;
    sums[2u * i + 1u] = s2;
    return;
  }`
        : ''
    }${
      affine
        ? `
  let c = i - params.rows;
  var sb = 0.0;
  var sw = 0.0;
  for (var m = 0u; m < params.images; m++) {
    sb += parts[2u * (m * params.C + c)];
    sw += parts[2u * (m * params.C + c) + 1u];
  }
  db[c] = sb;
  dw[c] = sw;`
        : ''
    }`,
  });
});

export const channelGradGrid = (n: number): Grid => grid1d(n, WG);

/**
 * LayerNorm's affine gradients in one pass: an invocation per parameter p sums over the rows
 * dw[p] = sum_r g * (x - mean_r) * rstd_r and db[p] = sum_r g, at (r, p) of the [rows, P] view. Each sum runs
 * in row order as the column reduction's blockedSum does, so the gradients equal, bit for bit, a product
 * map followed by two column sums (three dispatches and a [rows, P] temporary, plus copies of the statistics).
 */
export const layerNormAffineGradKernel = cachedKernel(
  (): Kernel =>
    flatKernel({
      key: 'norm:affinegrad',
      buffers: [readOnly('x'), readOnly('g'), readOnly('stats'), readWrite('dw'), readWrite('db')],
      uniforms: fields('u32', 'rows', 'P'),
      workgroupSize: WG,
      index: 'p',
      bound: 'params.P',
      body: /* wgsl */ `
  var dwAcc = 0.0;
  ${blockedSum('dwAcc', '0u', 1, 'g[r * params.P + p] * (x[r * params.P + p] - stats[2u * r]) * stats[2u * r + 1u]', 'params.rows')}
  var dbAcc = 0.0;
  ${blockedSum('dbAcc', '0u', 1, 'g[r * params.P + p]', 'params.rows')}
  dw[p] = dwAcc;
  db[p] = dbAcc;`,
    }),
);

/** Per-row gradient sums with one invocation per row. */
const threadGradSums = (affine: boolean): Kernel =>
  flatKernel({
    key: `norm:gradsums:thread:${affine}`,
    buffers: [readOnly('x'), readOnly('g'), readOnly('stats'), ...(affine ? [readOnly('w')] : []), readWrite('sums')],
    uniforms: [{ name: 'rows', type: 'u32' }, ...AFFINE_UNIFORMS],
    workgroupSize: THREAD_ROWS,
    index: 'row',
    bound: 'params.rows',
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
export const normGradSumsKernel = cachedKernel(
  (affine: boolean, mode: NormRowMode = 'group', vec = false, lanes: RowLanes = 64): Kernel => {
    if (mode === 'thread') return threadGradSums(affine);
    const t = vec ? 'vec4<f32>' : 'f32';
    const w = affine ? ' * w[(i / params.inner) % params.P]' : '';
    const loop = vec
      ? `for (var j = lid; j < params.L / 4u; j += ${lanes}u) {
    let i = base + 4u * j;
    let gw = g[i / 4u]${w};
    acc += (gw.x + gw.y) + (gw.z + gw.w);
    acc2 += dot(gw, (x[i / 4u] - vec4<f32>(mean)) * rstd);
  }`
      : `for (var j = lid; j < params.L; j += ${lanes}u) {
    let i = base + j;
    let gw = g[i]${w};
    acc += gw;
    acc2 += gw * (x[i] - mean) * rstd;
  }`;
    return flatKernel({
      key: `norm:gradsums:${affine}:${vec}${lanesKey(lanes)}`,
      buffers: [
        readOnly('x', t),
        readOnly('g', t),
        readOnly('stats'),
        ...(affine ? [readOnly('w')] : []),
        readWrite('sums'),
      ],
      uniforms: [{ name: 'rows', type: 'u32' }, ...AFFINE_UNIFORMS],
      ...perRow(lanes),
      body: /* wgsl */ `
  let base = row * params.L;
  let mean = stats[2u * row];
  let rstd = stats[2u * row + 1u];
  var acc = 0.0;
  var acc2 = 0.0;
  ${loop}
  ${storePairSum('sums', 'row', lanes)}`,
    });
  },
);

/**
 * `vec`: four consecutive values per invocation (same row and channel), g, x and dx as vec4. `silu`: g is the
 * gradient of silu(z), z = xhat * w + b, and the SiLU's gradient is recomputed here (GroupNorm's fused SiLU).
 */
export const normGradInputKernel = cachedKernel(
  (affine: boolean, vec: boolean = false, silu: boolean = false, laneParams: boolean = false): Kernel => {
    const t = vec ? 'vec4<f32>' : 'f32';
    const pt = laneParamType(vec, laneParams);
    return flatKernel({
      key: `norm:gradinput:${affine}:${vec}${silu ? ':silu' : ''}${laneParams ? ':lanes' : ''}`,
      buffers: [
        readOnly('x', t),
        readOnly('g', t),
        readOnly('stats'),
        readOnly('sums'),
        ...(affine ? [readOnly('w', pt)] : []),
        ...(affine && silu ? [readOnly('b', pt)] : []),
        readWrite('dx', t),
      ],
      uniforms: AFFINE_UNIFORMS,
      workgroupSize: ELEM_WG,
      index: 'e',
      bound: null,
      body: /* wgsl */ `
  let i = ${vec ? '4u * e' : 'e'};
  if (i >= params.n) { return; }
  let r = i / params.L;
  let rstd = stats[2u * r + 1u];
  let xhat = (x[e] - ${t}(stats[2u * r])) * rstd;
  ${affine ? 'let p = (i / params.inner) % params.P;' : ''}
  ${silu ? siluGradWgsl(t, 'g[e]', affine, `w[${paramIndex(laneParams)}]`, `b[${paramIndex(laneParams)}]`) : 'let gz = g[e];'}
  let gw = gz${affine ? ` * w[${paramIndex(laneParams)}]` : ''};
  let invL = 1.0 / f32(params.L);
  dx[e] = rstd * (gw - ${t}(sums[2u * r] * invL) - xhat * (sums[2u * r + 1u] * invL));`,
    });
  },
);

/**
 * LayerNorm's rows (inner 1, a parameter per value) in 'thread' mode, forward in one dispatch: an invocation per
 * row takes the statistics as threadMoments does (the same sums in the same order), stores them for the backward
 * and writes the normalised row, so the pass that applied them separately (a second dispatch reading the row
 * again) is gone. `vec`: L a multiple of 4, x, y and the affine as vec4.
 */
export const layerNormThreadForwardKernel = cachedKernel((affine: boolean, vec: boolean): Kernel => {
  const t = vec ? 'vec4<f32>' : 'f32';
  const q = vec ? 'params.L / 4u' : 'params.L';
  // Sums in element order: lane by lane within each vec4.
  const each = (acc: string, f: (v: string) => string) =>
    vec
      ? `for (var k = 0u; k < ${q}; k++) { let v4 = x[base + k]; for (var c = 0u; c < 4u; c++) { ${acc} += ${f('v4[c]')}; } }`
      : `for (var k = 0u; k < ${q}; k++) { ${acc} += ${f('x[base + k]')}; }`;
  return flatKernel({
    key: `norm:lnfwd:thread:${affine}:${vec}`,
    buffers: [
      readOnly('x', t),
      ...(affine ? [readOnly('w', t), readOnly('b', t)] : []),
      readWrite('y', t),
      readWrite('stats'),
    ],
    uniforms: [...fields('u32', 'rows', 'L'), EPS_UNIFORM],
    workgroupSize: THREAD_ROWS,
    index: 'row',
    bound: 'params.rows',
    body: /* wgsl */ `
  let base = row * ${q};
  var mean = 0.0;
  ${each('mean', (v) => v)}
  mean = mean / f32(params.L);
  var variance = 0.0;
  ${each('variance', (v) => `(${v} - mean) * (${v} - mean)`)}
  let rstd = inverseSqrt(variance / f32(params.L) + params.eps);
  stats[2u * row] = mean;
  stats[2u * row + 1u] = rstd;
  for (var k = 0u; k < ${q}; k++) {
    let xhat = (x[base + k] - ${t}(mean)) * rstd;
    ${affine ? 'let wv = w[k];\n    let bv = b[k];' : ''}
    ${normOutputWgsl(t, affine, false)}
    y[base + k] = yv;
  }`,
  });
});

/**
 * LayerNorm's input gradient in 'thread' mode in one dispatch: an invocation per row takes threadGradSums' sums
 * (same order) and then writes the row's dx as normGradInput does, instead of storing the sums for a second
 * dispatch. `vec`: L a multiple of 4, x, g, dx and the weight as vec4.
 */
export const layerNormThreadBackwardKernel = cachedKernel((affine: boolean, vec: boolean): Kernel => {
  const t = vec ? 'vec4<f32>' : 'f32';
  const q = vec ? 'params.L / 4u' : 'params.L';
  const sums = vec
    ? `for (var k = 0u; k < ${q}; k++) {
    let gw4 = g[base + k]${affine ? ' * w[k]' : ''};
    let x4 = x[base + k];
    for (var c = 0u; c < 4u; c++) { s1 += gw4[c]; s2 += gw4[c] * (x4[c] - mean) * rstd; }
  }`
    : `for (var k = 0u; k < ${q}; k++) {
    let gw = g[base + k]${affine ? ' * w[k]' : ''};
    s1 += gw;
    s2 += gw * (x[base + k] - mean) * rstd;
  }`;
  return flatKernel({
    key: `norm:lnbwd:thread:${affine}:${vec}`,
    buffers: [
      readOnly('x', t),
      readOnly('g', t),
      readOnly('stats'),
      ...(affine ? [readOnly('w', t)] : []),
      readWrite('dx', t),
    ],
    uniforms: fields('u32', 'rows', 'L'),
    workgroupSize: THREAD_ROWS,
    index: 'row',
    bound: 'params.rows',
    body: /* wgsl */ `
  let base = row * ${q};
  let mean = stats[2u * row];
  let rstd = stats[2u * row + 1u];
  var s1 = 0.0;
  var s2 = 0.0;
  ${sums}
  let invL = 1.0 / f32(params.L);
  for (var k = 0u; k < ${q}; k++) {
    let xhat = (x[base + k] - ${t}(mean)) * rstd;
    let gw = g[base + k]${affine ? ' * w[k]' : ''};
    dx[base + k] = rstd * (gw - ${t}(s1 * invL) - xhat * (s2 * invL));
  }`,
  });
});

export const normRowGrid = (rows: number, mode: NormRowMode = 'group'): Grid =>
  mode === 'thread' ? grid1d(rows, THREAD_ROWS) : gridGroups(rows);
export const normElementGrid = (n: number): Grid => grid1d(n, 256);
