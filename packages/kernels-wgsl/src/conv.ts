import {
  cachedKernel,
  flatKernel,
  type Grid,
  type Kernel,
  makeKernel,
  MAX_WORKGROUPS_PER_DIM,
  readOnly,
  readWrite,
} from './kernel.js';

/**
 * 2-D convolution as implicit GEMM: C[m, n] = sum_k A[m, k] * B[k, n] where B is never materialised; its
 * entries are gathered from the image on the fly (zero outside the padded input). Three products cover the
 * forward pass and both gradients:
 *
 * - 'forward':     m = output channel, n = output pixel, k = (input channel, ky, kx)
 *                  A = weight rows, B[k, n] = x[ci, oy*s - p + ky*d, ox*s - p + kx*d]
 * - 'inputGrad':   m = input channel, n = input pixel, k = (output channel, ky, kx)
 *                  A[m, k] = weight[co, m, ky, kx], B[k, n] = dy[co, (iy + p - ky*d)/s, (ix + p - kx*d)/s]
 *                  where the division is exact and in range (a transposed convolution)
 * - 'weightGrad':  m = output channel, n = (input channel, ky, kx), k = (image, output pixel)
 *                  A[m, k] = dy[img, co, pixel], B[k, n] = x[img, ci, oy*s - p + ky*d, ox*s - p + kx*d]
 *
 * The geometry (kernel size, stride, padding, dilation) is compiled into the shader, so index arithmetic
 * divides by constants. Groups and images are batched over the grid's z/y dimension. Each invocation owns a
 * TM x TN block of C in registers and reads A and B straight from storage (no workgroup memory: barriers are
 * expensive on CPU adapters, and the gathered B has little reuse to share).
 */
export type ConvProduct = 'forward' | 'inputGrad' | 'weightGrad';

export interface ConvGeometry {
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilationH: number;
  dilationW: number;
}

export interface ConvKernelSpec extends ConvGeometry {
  product: ConvProduct;
  /** Add bias[m] to the output ('forward' only). */
  bias: boolean;
}

const TM = 4;
const TN = 4;
const WG_X = 8; // threads along n
const WG_Y = 8; // threads along m

/** Uniforms shared by the three products (sizes of the current problem; geometry is compiled in). */
const UNIFORMS = [
  { name: 'M', type: 'u32' },
  { name: 'N', type: 'u32' },
  { name: 'K', type: 'u32' },
  { name: 'cin', type: 'u32' }, // input channels (all groups)
  { name: 'cout', type: 'u32' }, // output channels (all groups)
  { name: 'cinG', type: 'u32' }, // per group
  { name: 'coutG', type: 'u32' },
  { name: 'groups', type: 'u32' },
  { name: 'H', type: 'u32' },
  { name: 'W', type: 'u32' },
  { name: 'Ho', type: 'u32' },
  { name: 'Wo', type: 'u32' },
  { name: 'batches', type: 'u32' },
  { name: 'tilesN', type: 'u32' },
  { name: 'splits', type: 'u32' },
  { name: 'kChunk', type: 'u32' },
  { name: 'splitStride', type: 'u32' }, // elements between the output slabs of consecutive k splits
] as const;

/** WGSL computing `aIdx` (index into A) and `bVal` (gathered B value) for k and a column's precomputed terms. */
function productCode(spec: ConvKernelSpec): {
  names: [string, string];
  colSetup: string;
  kSetup: string;
  aIdx: string;
  bVal: string;
} {
  const g = spec;
  const kk = g.kh * g.kw;
  switch (spec.product) {
    case 'forward':
      return {
        names: ['w', 'x'],
        // Per column n (an output pixel): top-left input coordinate of its receptive field.
        colSetup: `let oy = n / params.Wo; let ox = n % params.Wo;
      cy[j] = i32(oy * ${g.strideH}u) - ${g.padH}; cx[j] = i32(ox * ${g.strideW}u) - ${g.padW}; cok[j] = n < params.N;`,
        // Per k: input channel and tap offsets.
        kSetup: `let ci = k / ${kk}u; let r = k % ${kk}u; let dy = i32((r / ${g.kw}u) * ${g.dilationH}u); let dx = i32((r % ${g.kw}u) * ${g.dilationW}u);
      let plane = xBase + ci * params.H * params.W;`,
        aIdx: 'wBase + m * params.K + k',
        bVal: `let iy = cy[j] + dy; let ix = cx[j] + dx;
        let inside = cok[j] && iy >= 0 && ix >= 0 && iy < i32(params.H) && ix < i32(params.W);
        bv[j] = select(0.0, x[plane + u32(max(iy, 0)) * params.W + u32(max(ix, 0))], inside);`,
      };
    case 'inputGrad':
      return {
        names: ['w', 'dy'],
        colSetup: `let iy = n / params.W; let ix = n % params.W;
      cy[j] = i32(iy) + ${g.padH}; cx[j] = i32(ix) + ${g.padW}; cok[j] = n < params.N;`,
        kSetup: `let co = k / ${kk}u; let r = k % ${kk}u; let ky = r / ${g.kw}u; let kx = r % ${g.kw}u;
      let dyOff = i32(ky * ${g.dilationH}u); let dxOff = i32(kx * ${g.dilationW}u);
      let plane = dyBase + co * params.Ho * params.Wo;
      let aRow = wBase + co * params.cinG * ${kk}u + r;`,
        aIdx: `aRow + m * ${kk}u`,
        bVal: `let ty = cy[j] - dyOff; let tx = cx[j] - dxOff;
        let oy = ty / ${g.strideH}; let ox = tx / ${g.strideW};
        let inside = cok[j] && ty >= 0 && tx >= 0 && ty % ${g.strideH} == 0 && tx % ${g.strideW} == 0 && oy < i32(params.Ho) && ox < i32(params.Wo);
        bv[j] = select(0.0, dy[plane + u32(max(oy, 0)) * params.Wo + u32(max(ox, 0))], inside);`,
      };
    case 'weightGrad':
      return {
        names: ['dy', 'x'],
        // Per column n = (ci, ky, kx): its channel plane and tap offset.
        colSetup: `let ci = n / ${kk}u; let r = n % ${kk}u;
      cy[j] = i32((r / ${g.kw}u) * ${g.dilationH}u) - ${g.padH}; cx[j] = i32((r % ${g.kw}u) * ${g.dilationW}u) - ${g.padW};
      cok[j] = n < params.N; cplane[j] = (group * params.cinG + min(ci, params.cinG - 1u)) * params.H * params.W;`,
        // k = (image, output pixel).
        kSetup: `let hw = params.Ho * params.Wo; let img = k / hw; let pix = k % hw;
      let oyS = i32((pix / params.Wo) * ${g.strideH}u); let oxS = i32((pix % params.Wo) * ${g.strideW}u);
      let xImg = img * params.cin * params.H * params.W;
      let aCol = (img * params.cout + group * params.coutG) * hw + pix;`,
        aIdx: 'aCol + m * hw',
        bVal: `let iy = cy[j] + oyS; let ix = cx[j] + oxS;
        let inside = cok[j] && iy >= 0 && ix >= 0 && iy < i32(params.H) && ix < i32(params.W);
        bv[j] = select(0.0, x[xImg + cplane[j] + u32(max(iy, 0)) * params.W + u32(max(ix, 0))], inside);`,
      };
  }
}

export type ConvVariant = 'register' | 'broadcast';

export interface ConvLaunchSpec extends ConvKernelSpec {
  /**
   * 'register' (any adapter): each invocation owns a 4 x 4 block of C, reading A and B from storage.
   * 'broadcast' (CPU adapters with 8-wide subgroups): a workgroup is one 8-lane subgroup owning an 8 x 32
   * block; each lane loads one A row and the values reach all lanes by subgroupBroadcast, so a k step costs
   * one A load and four B gathers per lane for 32 FMAs (loads, not arithmetic, bound CPU adapters).
   */
  variant: ConvVariant;
}

export const CONV_TILES: Record<ConvVariant, { m: number; n: number }> = {
  register: { m: TM * WG_Y, n: TN * WG_X },
  broadcast: { m: 8, n: 32 },
};

/** Base offsets of one batch entry: (image, group) for forward and inputGrad, group for weightGrad. */
function batchBases(spec: ConvKernelSpec): string {
  const kk = spec.kh * spec.kw;
  switch (spec.product) {
    case 'forward':
      return `let img = batch / params.groups; let group = batch % params.groups;
  let wBase = group * params.coutG * params.K;
  let xBase = (img * params.cin + group * params.cinG) * params.H * params.W;
  let cBase = split * params.splitStride + (img * params.cout + group * params.coutG) * params.N;
  let biasBase = group * params.coutG;`;
    case 'inputGrad':
      return `let img = batch / params.groups; let group = batch % params.groups;
  let wBase = group * params.coutG * params.cinG * ${kk}u;
  let dyBase = (img * params.cout + group * params.coutG) * params.Ho * params.Wo;
  let cBase = split * params.splitStride + (img * params.cin + group * params.cinG) * params.N;`;
    case 'weightGrad':
      return `let group = batch;
  let cBase = split * params.splitStride + group * params.coutG * params.N;`;
  }
}

/** Flat workgroup index -> (batch entry, k split); k runs over [kBegin, kEnd). */
const PROLOGUE = /* wgsl */ `
  let flat = wid.y + wid.z * ${MAX_WORKGROUPS_PER_DIM}u;
  if (flat >= params.batches * params.splits) { return; }
  let batch = flat % params.batches;
  let split = flat / params.batches;
  let kBegin = split * params.kChunk;
  let kEnd = min(params.K, kBegin + params.kChunk);`;

function registerKernel(spec: ConvLaunchSpec, p: ReturnType<typeof productCode>, bias: boolean): string {
  const [aName] = p.names;
  return /* wgsl */ `
@compute @workgroup_size(${WG_X}, ${WG_Y})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  ${PROLOGUE}
  ${batchBases(spec)}
  let m0 = (wid.x / params.tilesN) * ${TM * WG_Y}u + lid.y;
  let n0 = (wid.x % params.tilesN) * ${TN * WG_X}u + lid.x;
  var cy: array<i32, ${TN}>;
  var cx: array<i32, ${TN}>;
  var cok: array<bool, ${TN}>;
  var cplane: array<u32, ${TN}>;
  for (var j = 0u; j < ${TN}u; j++) {
    let n = n0 + j * ${WG_X}u;
    ${p.colSetup}
  }
  var acc: array<array<f32, ${TN}>, ${TM}>;
  for (var k = kBegin; k < kEnd; k++) {
    ${p.kSetup}
    var av: array<f32, ${TM}>;
    for (var i = 0u; i < ${TM}u; i++) {
      let m = min(m0 + i * ${WG_Y}u, params.M - 1u);
      av[i] = ${aName}[${p.aIdx}];
    }
    var bv: array<f32, ${TN}>;
    for (var j = 0u; j < ${TN}u; j++) {
      ${p.bVal}
    }
    for (var i = 0u; i < ${TM}u; i++) {
      for (var j = 0u; j < ${TN}u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
    }
  }
  for (var i = 0u; i < ${TM}u; i++) {
    let m = m0 + i * ${WG_Y}u;
    if (m >= params.M) { continue; }
    for (var j = 0u; j < ${TN}u; j++) {
      let n = n0 + j * ${WG_X}u;
      if (n < params.N) { c[cBase + m * params.N + n] = acc[i][j]${bias ? ' + bias[biasBase + m]' : ''}; }
    }
  }
}`;
}

function broadcastKernel(spec: ConvLaunchSpec, p: ReturnType<typeof productCode>, bias: boolean): string {
  const [aName] = p.names;
  const rows = [0, 1, 2, 3, 4, 5, 6, 7];
  // One k step: the lane's A value is av; B values of its four columns are gathered into bv.
  const kStep = `{
      ${p.kSetup}
      let m = min(m0 + lane, params.M - 1u);
      let av = ${aName}[${p.aIdx}];
      var bv: vec4<f32>;
      ${[0, 1, 2, 3].map((j) => `{ ${p.bVal.replace(/\[j\]/g, `[${j}]`)} }`).join('\n      ')}
      ${rows.map((i) => `acc${i} = fma(vec4<f32>(subgroupBroadcast(av, ${i}u)), bv, acc${i});`).join('\n      ')}
    }`;
  return /* wgsl */ `
@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  ${PROLOGUE}
  ${batchBases(spec)}
  let m0 = (wid.x / params.tilesN) * 8u;
  let n0 = (wid.x % params.tilesN) * 32u;
  var cy: array<i32, 4>;
  var cx: array<i32, 4>;
  var cok: array<bool, 4>;
  var cplane: array<u32, 4>;
  for (var j = 0u; j < 4u; j++) {
    let n = n0 + lane + j * 8u;
    ${p.colSetup}
  }
  ${rows.map((i) => `var acc${i} = vec4<f32>();`).join('\n  ')}
  for (var k = kBegin; k < kEnd; k++) ${kStep}
  ${rows
    .map(
      (i) => `if (m0 + ${i}u < params.M) {
    let m = m0 + ${i}u;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lane + j * 8u;
      if (n < params.N) { c[cBase + m * params.N + n] = acc${i}[j]${bias ? ' + bias[biasBase + m]' : ''}; }
    }
  }`,
    )
    .join('\n  ')}
}`;
}

export const convKernel = cachedKernel((spec: ConvLaunchSpec): Kernel => {
  const p = productCode(spec);
  const [aName, bName] = p.names;
  const bias = spec.bias && spec.product === 'forward';
  return makeKernel({
    key: `conv:${JSON.stringify(spec)}`,
    buffers: [
      { name: aName, access: 'read', type: 'f32' },
      { name: bName, access: 'read', type: 'f32' },
      ...(bias ? [readOnly('bias')] : []),
      readWrite('c'),
    ],
    uniforms: UNIFORMS,
    workgroupSize: spec.variant === 'broadcast' ? [8, 1, 1] : [WG_X, WG_Y, 1],
    body: spec.variant === 'broadcast' ? broadcastKernel(spec, p, bias) : registerKernel(spec, p, bias),
  });
});

/**
 * Grid for a product of M x N per batch entry, with K optionally split into `splits` chunks whose partial
 * products land in consecutive output slabs (summed afterwards).
 */
export function convGrid(
  variant: ConvVariant,
  M: number,
  N: number,
  batches: number,
  splits = 1,
): { grid: Grid; tilesN: number } {
  const tile = CONV_TILES[variant];
  const tilesM = Math.ceil(M / tile.m);
  const tilesN = Math.ceil(N / tile.n);
  if (tilesM * tilesN > MAX_WORKGROUPS_PER_DIM) {
    throw new Error(
      `conv2d: an output of ${M} x ${N} per image needs ${tilesM * tilesN} tiles, more than ${MAX_WORKGROUPS_PER_DIM}`,
    );
  }
  const entries = batches * splits;
  const z = Math.ceil(entries / MAX_WORKGROUPS_PER_DIM);
  return { grid: [tilesM * tilesN, Math.min(entries, MAX_WORKGROUPS_PER_DIM), z], tilesN };
}

/**
 * Spreads a strided convolution's output gradient dy [planes, Ho, Wo] onto the grid of the same convolution at
 * stride 1, [planes, Hs, Ws]: out[y, x] = dy[y / sH, x / sW] where both divide exactly (and land inside dy), else
 * 0. The input gradient of the strided convolution is the stride-1 convolution's input gradient of this. An
 * invocation per output value.
 */
export const strideSpreadKernel = cachedKernel(
  (): Kernel =>
    flatKernel({
      key: 'conv.spread',
      buffers: [readOnly('dy'), readWrite('out')],
      uniforms: [
        { name: 'n', type: 'u32' },
        { name: 'Ho', type: 'u32' },
        { name: 'Wo', type: 'u32' },
        { name: 'Hs', type: 'u32' },
        { name: 'Ws', type: 'u32' },
        { name: 'sH', type: 'u32' },
        { name: 'sW', type: 'u32' },
      ],
      workgroupSize: 256,
      body: /* wgsl */ `
  let x = i % params.Ws;
  let y = (i / params.Ws) % params.Hs;
  let plane = i / (params.Ws * params.Hs);
  let oy = y / params.sH;
  let ox = x / params.sW;
  let on = y % params.sH == 0u && x % params.sW == 0u && oy < params.Ho && ox < params.Wo;
  out[i] = select(0.0, dy[(plane * params.Ho + min(oy, params.Ho - 1u)) * params.Wo + min(ox, params.Wo - 1u)], on);`,
    }),
);
