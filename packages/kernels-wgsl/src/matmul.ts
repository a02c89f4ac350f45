import {
  cachedKernel,
  fields,
  type Grid,
  type Kernel,
  makeKernel,
  MAX_WORKGROUPS_PER_DIM,
  readOnly,
  readWrite,
} from './kernel.js';

/**
 * Batched C[b] = op(A[b]) @ op(B[b]) (+ bias), op = optional transpose, for any M, N, K.
 * A is [M, K] (or [K, M] when transA), B is [K, N] (or [N, K] when transB); batch strides of 0 broadcast.
 * Bias (optional) is added per column (length N) or per row (length M), which covers Linear and 1x1 conv.
 *
 * Three variants, chosen by the caller from the adapter:
 * - 'broadcast' (CPU adapters with subgroups of at least 8, e.g. lavapipe): on a CPU every invocation-varying
 *   load is a per-lane scalar loop, so loads, not arithmetic, set the speed. A workgroup is one 8-lane
 *   subgroup owning an 8 x 32 block of C: each lane reads 8 k-values of one A row (or 8 rows of one A
 *   column) as two vec4 loads and the block's A values reach every lane through subgroupBroadcast, a
 *   register shuffle; B is read once per lane as vec4. That is ~40 loaded values per k for 32 vector FMAs.
 * - 'tiled' (GPUs): the classic workgroup-memory tiling, 64 x 64 blocks staged in 16-deep slices of K.
 * - 'register' (CPU adapters without subgroups): each invocation owns a 4 x 4 block and reads A and B
 *   straight from storage; no workgroup memory, whose barriers are expensive on CPUs.
 */
export type MatmulVariant = 'broadcast' | 'tiled' | 'register';

export interface MatmulSpec {
  transA: boolean;
  transB: boolean;
  bias: 'none' | 'col' | 'row';
  /** Defaults to 'register', the variant that works on every adapter without features. */
  variant?: MatmulVariant;
  /**
   * 'broadcast' only: whether A and B rows along their contiguous dimension start at multiples of 4
   * elements, so they can be read as vec4 (see `matmulAlignment`). Unaligned operands take scalar loads.
   */
  vecA?: boolean;
  vecB?: boolean;
  /**
   * 'broadcast' only: N is a multiple of 4, so each lane's four adjacent columns are stored as one vec4 (C bound
   * as vec4): a quarter of the per-lane store loops, which matter when K is short. Opt-in (the caller binds C as
   * vec4 and guarantees N % 4 == 0).
   */
  vecC?: boolean;
  /**
   * The softmax backward fused into the product (attention's dP = dO V^T): C = alpha * P * (op(A) op(B) - delta[row])
   * with P laid out as C and delta one value per row of every batch ([batch, M]); `alpha` (the attention scale) is a
   * uniform. Saves writing dP and reading it back, the largest tensors of an attention backward. No bias with it.
   */
  softmaxGrad?: boolean;
  /** C = alpha * op(A) op(B) (+ bias), `alpha` a uniform: attention's scaled scores without a pass over q. */
  scaled?: boolean;
  /**
   * 'broadcast' with transA and a batch of 1 only: the row sums of op(A) (length M) written to `sums` alongside C.
   * A Linear layer's weight gradient dY^T X gives its bias gradient (the column sums of dY) this way, without a
   * reduction dispatch of its own.
   */
  rowSumsA?: boolean;
}

/** Rows and columns of C that one workgroup of each variant computes. */
export const MATMUL_TILES: Record<MatmulVariant, { m: number; n: number }> = {
  broadcast: { m: 8, n: 32 },
  tiled: { m: 64, n: 64 },
  register: { m: 32, n: 64 },
};

/**
 * vec4 alignment of each operand's contiguous dimension (K, or M / N when transposed). Empty operands
 * (K = 0) stay scalar: a vec4 binding needs at least 16 bytes.
 */
export function matmulAlignment(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
): { vecA: boolean; vecB: boolean } {
  return { vecA: K > 0 && (transA ? M : K) % 4 === 0, vecB: K > 0 && (transB ? K : N) % 4 === 0 };
}

/*
 * Operand layouts: row r of batch entry b of an operand starts at base(b) + r * ld, where the batch index splits
 * as b = outer * heads + inner and base(b) = outer * stride + inner * headStride. Contiguous operands have
 * heads = 1 (inner = 0) and ld = their row length; attention's per-head matrices inside [B, N, heads * D] tokens
 * have ld = heads * D and headStride = D, so no copy splits or merges the heads.
 */
const UNIFORMS = fields(
  'u32',
  'M',
  'N',
  'K',
  'strideA',
  'strideB',
  'tilesM',
  'tilesN',
  'batches',
  'span',
  'heads',
  'headStrideA',
  'headStrideB',
  'headStrideC',
  'strideC',
  'lda',
  'ldb',
  'ldc',
);
const uniformsOf = (spec: MatmulSpec) => [
  ...UNIFORMS,
  ...(spec.softmaxGrad || spec.scaled ? fields('f32', 'alpha') : []),
];

/**
 * The launch of any variant: the output tiles of every batch, enumerated flat, `span` consecutive ones per
 * workgroup (one except for 'broadcast', see broadcastSpan), and the workgroups folded over x, y and z so that
 * no dimension exceeds the dispatch limit. Kernels recover (batch, tileM, tileN) with the prologue from
 * `tilePrologue`.
 */
export function matmulGrid(
  variant: MatmulVariant,
  M: number,
  N: number,
  batch: number,
): { grid: Grid; tilesM: number; tilesN: number; span: number } {
  const tile = MATMUL_TILES[variant];
  const tilesM = Math.ceil(M / tile.m);
  const tilesN = Math.ceil(N / tile.n);
  const tiles = tilesM * tilesN * batch;
  const span = variant === 'broadcast' ? broadcastSpan(tiles) : 1;
  const groups = Math.ceil(tiles / span);
  const x = Math.min(groups, MAX_WORKGROUPS_PER_DIM);
  const yz = Math.ceil(groups / x);
  const y = Math.min(yz, MAX_WORKGROUPS_PER_DIM);
  const z = Math.ceil(yz / y);
  if (z > MAX_WORKGROUPS_PER_DIM)
    throw new Error(`matmul: ${batch} x ${M}x${N} output needs ${groups} workgroups, too many for one dispatch`);
  return { grid: [x, y, z], tilesM, tilesN, span };
}

const FLAT_WORKGROUP = 'wid.x + nwg.x * (wid.y + nwg.y * wid.z)';
/**
 * Tiles each 'broadcast' workgroup computes in turn. On a CPU adapter every workgroup pays a fixed cost to
 * start, which is much of an 8 x 32 tile's time when K is short (BENCHMARKS.md measures what it saves). Launches
 * of few tiles keep one per workgroup, so every core gets work.
 */
function broadcastSpan(tiles: number): number {
  return tiles >= 256 ? 4 : tiles >= 64 ? 2 : 1;
}

const tilePrologue = (tileM: number, tileN: number, flat = FLAT_WORKGROUP, exit = 'return') => /* wgsl */ `
  let flat = ${flat};
  let tilesPerBatch = params.tilesM * params.tilesN;
  let batch = flat / tilesPerBatch;
  if (batch >= params.batches) { ${exit}; }
  let tile = flat % tilesPerBatch;
  let m0 = (tile / params.tilesN) * ${tileM}u;
  let n0 = (tile % params.tilesN) * ${tileN}u;
  let outer = batch / params.heads;
  let inner = batch % params.heads;
  let aBase = outer * params.strideA + inner * params.headStrideA;
  let bBase = outer * params.strideB + inner * params.headStrideB;
  let cBase = outer * params.strideC + inner * params.headStrideC;`;

function bindings(spec: MatmulSpec, aType: string, bType: string, cType = 'f32') {
  return [
    readOnly('a', aType),
    readOnly('b', bType),
    ...(spec.bias !== 'none' ? [readOnly('bias')] : []),
    ...(spec.softmaxGrad ? [readOnly('p', cType), readOnly('delta')] : []),
    readWrite('c', cType),
    ...(spec.rowSumsA ? [readWrite('sums')] : []),
  ];
}

const biasTerm = (bias: MatmulSpec['bias'], row: string, col: string) =>
  bias === 'col' ? ` + bias[${col}]` : bias === 'row' ? ` + bias[${row}]` : '';

/**
 * What a kernel stores at C's element (or vec4) `at` from its accumulated `value` (bias already added): the value
 * itself, alpha times it (`scaled`), or with `softmaxGrad` alpha * P * (value - delta of the row). `batch` and `row`
 * name the batch and row.
 */
const epilogue = (spec: MatmulSpec, value: string, at: string, row: string, vec = false) =>
  spec.softmaxGrad
    ? `params.alpha * p[${at}] * (${value} - ${vec ? 'vec4<f32>' : ''}(delta[batch * params.M + ${row}]))`
    : spec.scaled
      ? `params.alpha * (${value})`
      : value;

function checkSpec(spec: MatmulSpec, variant: MatmulVariant): void {
  if (spec.softmaxGrad && (spec.bias !== 'none' || spec.scaled))
    throw new Error('matmulKernel: softmaxGrad takes no bias and no separate scale');
  if (spec.rowSumsA && !(variant === 'broadcast' && spec.transA))
    throw new Error(
      `matmulKernel: rowSumsA needs the 'broadcast' variant and transA (got '${variant}', transA ${spec.transA})`,
    );
}

export const matmulKernel = cachedKernel((spec: MatmulSpec): Kernel => {
  const variant = spec.variant ?? 'register';
  checkSpec(spec, variant);
  if (variant === 'broadcast') return broadcastKernel(spec);
  if (variant === 'tiled') return tiledKernel(spec);
  return registerKernel(spec);
});

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const extrasKey = (spec: MatmulSpec) =>
  `${spec.softmaxGrad ? ':softmaxGrad' : ''}${spec.scaled ? ':scaled' : ''}${spec.rowSumsA ? ':rowSumsA' : ''}`;

/**
 * 'broadcast': workgroup = one 8-lane subgroup, C blocks 8 x 32 (`span` of them in turn). Lane l accumulates
 * rows m0..m0+7 of its four adjacent columns n0 + 4l..4l+3 in eight vec4 accumulators (when B is transposed, the
 * lane reads those four rows of B along K). K advances in blocks of 8; a remainder of fewer than 8 is handled one k
 * at a time. Adjacent columns let C be stored as one vec4 per row even when B is transposed: with a short K (32-64,
 * attention scores and narrow Linear layers) the per-lane stores cost as much as the products.
 */
function broadcastKernel(spec: MatmulSpec): Kernel {
  const { transA, transB, bias } = spec;
  const vecA = spec.vecA ?? false;
  const vecB = spec.vecB ?? false;
  const vecC = spec.vecC ?? false;
  const rows = range(8);
  const ks = range(8);
  const cols = range(4);
  // A 4-wide read starting at element `i` of a or b (vec4 index when aligned, four scalars otherwise).
  const quad = (buf: string, vec: boolean, i: string) =>
    vec ? `${buf}[(${i}) / 4u]` : `vec4<f32>(${buf}[${i}], ${buf}[${i} + 1u], ${buf}[${i} + 2u], ${buf}[${i} + 3u])`;
  const scalar = (buf: string, vec: boolean, i: string) => (vec ? `${buf}[(${i}) / 4u][(${i}) % 4u]` : `${buf}[${i}]`);

  // A values of a block of 8 k: lane l reads 8 consecutive elements along A's contiguous dimension.
  // Not transposed: row min(m0 + l, M - 1) at k0..k0+7, so A[m0 + i, k0 + kk] is lane i's element kk.
  // Transposed: row k0 + l of A^T at m0..m0+7, so A[m0 + i, k0 + kk] is lane kk's element i (elements past
  // M land in rows that are never stored).
  const aLoads = transA
    ? `let aOff = aBase + (k0 + lane) * params.lda + m0;`
    : `let aOff = aBase + min(m0 + lane, params.M - 1u) * params.lda + k0;`;
  const aElem = (i: number, kk: number) => {
    const [l, e] = transA ? [kk, i] : [i, kk];
    return `subgroupBroadcast(al${e >> 2}[${e & 3}], ${l}u)`;
  };
  const aTail = (i: number) =>
    transA
      ? scalar('a', vecA, `aBase + k * params.lda + min(m0 + ${i}u, params.M - 1u)`)
      : scalar('a', vecA, `aBase + min(m0 + ${i}u, params.M - 1u) * params.lda + k`);

  // B values: lane l's four columns. Not transposed: a vec4 of row k. Transposed: column j (row n_j of B)
  // read as two vec4 along k per block, then regrouped per k (free: vec4 components are separate registers).
  const col = (j: number) => `n0 + 4u * lane + ${j}u`;
  const bSetup = transB
    ? cols.map((j) => `let bRow${j} = bBase + min(${col(j)}, params.N - 1u) * params.ldb;`).join('\n  ')
    : vecB
      ? `let bCol = min(n0 + 4u * lane, params.N - 4u);`
      : cols.map((j) => `let bCol${j} = min(${col(j)}, params.N - 1u);`).join('\n  ');
  const bRowNN = (k: string) =>
    vecB
      ? `b[(bBase + ${k} * params.ldb + bCol) / 4u]`
      : `vec4<f32>(${cols.map((j) => `b[bBase + ${k} * params.ldb + bCol${j}]`).join(', ')})`;
  const bBlockLoads = transB
    ? cols
        .map(
          (j) =>
            `let bc${j}0 = ${quad('b', vecB, `bRow${j} + k0`)}; let bc${j}1 = ${quad('b', vecB, `bRow${j} + k0 + 4u`)};`,
        )
        .join('\n    ')
    : '';
  const bAt = (kk: number) =>
    transB ? `vec4<f32>(${cols.map((j) => `bc${j}${kk >> 2}[${kk & 3}]`).join(', ')})` : bRowNN(`(k0 + ${kk}u)`);
  const bTail = transB ? `vec4<f32>(${cols.map((j) => scalar('b', vecB, `bRow${j} + k`)).join(', ')})` : bRowNN('k');

  const block = ks
    .map(
      (kk) => `{
      let bv = ${bAt(kk)};
      ${rows.map((i) => `acc${i} = fma(vec4<f32>(${aElem(i, kk)}), bv, acc${i});`).join('\n      ')}
    }`,
    )
    .join('\n    ');

  // A column bias is the same for the tile's eight rows: loaded once (per-lane loads are what costs on a CPU).
  const colBias =
    bias === 'col'
      ? vecC
        ? `let colBias = vec4<f32>(${cols.map((j) => `bias[${col(j)}]`).join(', ')});`
        : cols.map((j) => `let colBias${j} = bias[min(${col(j)}, params.N - 1u)];`).join(' ')
      : '';
  const biasVec = bias === 'col' ? ' + colBias' : bias === 'row' ? ' + bias[row]' : '';
  const biasAt = (j: number) => (bias === 'col' ? ` + colBias${j}` : biasTerm(bias, 'row', col(j)));
  const stores = vecC
    ? `if (${col(0)} < params.N) {
  ${colBias}
  ${rows.map((i) => `if (m0 + ${i}u < params.M) { let row = m0 + ${i}u; let at = (cBase + row * params.ldc + ${col(0)}) / 4u; c[at] = ${epilogue(spec, `acc${i}${biasVec}`, 'at', 'row', true)}; }`).join('\n  ')}
  }`
    : `${colBias}
  ${rows
    .map(
      (i) => `if (m0 + ${i}u < params.M) {
    let row = m0 + ${i}u;
    ${cols.map((j) => `if (${col(j)} < params.N) { let at = cBase + row * params.ldc + ${col(j)}; c[at] = ${epilogue(spec, `acc${i}[${j}]${biasAt(j)}`, 'at', 'row')}; }`).join('\n    ')}
  }`,
    )
    .join('\n  ')}`;
  // rowSumsA (transA): lane l holds A rows k0 + l at m0..m0+7 as al0, al1; their sums over the lanes are the
  // block's contribution to the row sums of op(A). The remainder's values are the same in every lane.
  const sums = spec.rowSumsA;
  const sumsInit = sums
    ? 'var rs0 = vec4<f32>(); var rs1 = vec4<f32>(); var rt0 = vec4<f32>(); var rt1 = vec4<f32>();'
    : '';
  const sumsBlock = sums ? 'rs0 += al0; rs1 += al1;' : '';
  const sumsTail = sums
    ? `rt0 += vec4<f32>(${range(4)
        .map((i) => aTail(i))
        .join(', ')}); rt1 += vec4<f32>(${range(4)
        .map((i) => aTail(i + 4))
        .join(', ')});`
    : '';
  const sumsStore = sums
    ? `let t0 = subgroupAdd(rs0) + rt0;
  let t1 = subgroupAdd(rs1) + rt1;
  if (n0 == 0u && m0 + lane < params.M) { sums[m0 + lane] = select(t1[lane & 3u], t0[lane & 3u], lane < 4u); }`
    : '';

  return makeKernel({
    key: `matmul:broadcast:${transA}:${transB}:${bias}:${vecA}:${vecB}${vecC ? ':vecC' : ''}${extrasKey(spec)}`,
    buffers: bindings(spec, vecA ? 'vec4<f32>' : 'f32', vecB ? 'vec4<f32>' : 'f32', vecC ? 'vec4<f32>' : 'f32'),
    uniforms: uniformsOf(spec),
    workgroupSize: [8, 1, 1],
    body: /* wgsl */ `
@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
  let firstTile = (${FLAT_WORKGROUP}) * params.span;
  for (var sp = 0u; sp < params.span; sp++) {
  ${tilePrologue(8, 32, 'firstTile + sp', 'break')}
  ${bSetup}
  ${rows.map((i) => `var acc${i} = vec4<f32>();`).join('\n  ')}
  ${sumsInit}
  let kBlocks = params.K / 8u * 8u;
  for (var k0 = 0u; k0 < kBlocks; k0 += 8u) {
    ${aLoads}
    let al0 = ${quad('a', vecA, 'aOff')};
    let al1 = ${quad('a', vecA, 'aOff + 4u')};
    ${sumsBlock}
    ${bBlockLoads}
    ${block}
  }
  for (var k = kBlocks; k < params.K; k++) {
    let bv = ${bTail};
    ${rows.map((i) => `acc${i} = fma(vec4<f32>(${aTail(i)}), bv, acc${i});`).join('\n    ')}
    ${sumsTail}
  }
  ${stores}
  ${sumsStore}
  }
}`,
  });
}

/**
 * 'tiled': 16 x 16 invocations, each owning a 4 x 4 block of a 64 x 64 tile; A and B slices 16 deep are
 * staged in workgroup memory (zero-padded at the edges) and reused by all 256 invocations.
 */
const TILE = 64;
const TILE_K = 16;
function tiledKernel(spec: MatmulSpec): Kernel {
  const { transA, transB, bias } = spec;
  const aIdx = (m: string, k: string) => (transA ? `${k} * params.lda + ${m}` : `${m} * params.lda + ${k}`);
  const bIdx = (k: string, n: string) => (transB ? `${n} * params.ldb + ${k}` : `${k} * params.ldb + ${n}`);
  // Each of the 256 invocations stages 4 of the 64 x 16 A values and 4 of the 16 x 64 B values. The
  // thread-to-element maps follow each operand's contiguous dimension so that neighbours read neighbours.
  const stageA = transA
    ? `let sm = t % 64u; let sk = t / 64u + 4u * s;` // A^T rows are k: consecutive invocations walk m
    : `let sk = t % 16u; let sm = t / 16u + 16u * s;`;
  const stageB = transB
    ? `let sk = t % 16u; let sn = t / 16u + 16u * s;`
    : `let sn = t % 64u; let sk = t / 64u + 4u * s;`;
  return makeKernel({
    key: `matmul:tiled:${transA}:${transB}:${bias}${extrasKey(spec)}`,
    buffers: bindings(spec, 'f32', 'f32'),
    uniforms: uniformsOf(spec),
    workgroupSize: [16, 16, 1],
    body: /* wgsl */ `
var<workgroup> tileA: array<array<f32, ${TILE}>, ${TILE_K}>; // [k][m]
var<workgroup> tileB: array<array<f32, ${TILE}>, ${TILE_K}>; // [k][n]
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  ${tilePrologue(TILE, TILE)}
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < params.K; k0 += ${TILE_K}u) {
    for (var s = 0u; s < 4u; s++) {
      { ${stageA}
        let m = m0 + sm; let k = k0 + sk;
        tileA[sk][sm] = select(0.0, a[aBase + ${aIdx('m', 'k')}], m < params.M && k < params.K); }
      { ${stageB}
        let n = n0 + sn; let k = k0 + sk;
        tileB[sk][sn] = select(0.0, b[bBase + ${bIdx('k', 'n')}], n < params.N && k < params.K); }
    }
    workgroupBarrier();
    for (var k = 0u; k < ${TILE_K}u; k++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { av[i] = tileA[k][lid.y + 16u * i]; bv[i] = tileB[k][lid.x + 16u * i]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let row = m0 + lid.y + 16u * i;
    if (row >= params.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let col = n0 + lid.x + 16u * j;
      if (col < params.N) { let at = cBase + row * params.ldc + col; c[at] = ${epilogue(spec, `acc[i][j]${biasTerm(bias, 'row', 'col')}`, 'at', 'row')}; }
    }
  }
}`,
  });
}

/**
 * 'register': each invocation owns a 4 x 4 block of a 32 x 64 tile and accumulates it over K reading A
 * and B straight from storage; neighbouring invocations read neighbouring columns of B.
 */
const TM = 4;
const TN = 4;
const WG_X = 16; // invocations along N
const WG_Y = 8; // invocations along M
function registerKernel(spec: MatmulSpec): Kernel {
  const { transA, transB, bias } = spec;
  const aIdx = (m: string, k: string) => (transA ? `${k} * params.lda + ${m}` : `${m} * params.lda + ${k}`);
  const bIdx = (k: string, n: string) => (transB ? `${n} * params.ldb + ${k}` : `${k} * params.ldb + ${n}`);
  return makeKernel({
    key: `matmul:register:${transA}:${transB}:${bias}${extrasKey(spec)}`,
    buffers: bindings(spec, 'f32', 'f32'),
    uniforms: uniformsOf(spec),
    workgroupSize: [WG_X, WG_Y, 1],
    body: /* wgsl */ `
@compute @workgroup_size(${WG_X}, ${WG_Y})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  ${tilePrologue(TM * WG_Y, TN * WG_X)}
  let mStart = m0 + lid.y;
  let nStart = n0 + lid.x;
  var acc: array<array<f32, ${TN}>, ${TM}>;
  for (var k = 0u; k < params.K; k++) {
    var av: array<f32, ${TM}>;
    for (var i = 0u; i < ${TM}u; i++) {
      let m = mStart + i * ${WG_Y}u;
      av[i] = select(0.0, a[aBase + ${aIdx('m', 'k')}], m < params.M);
    }
    for (var j = 0u; j < ${TN}u; j++) {
      let n = nStart + j * ${WG_X}u;
      let bv = select(0.0, b[bBase + ${bIdx('k', 'n')}], n < params.N);
      for (var i = 0u; i < ${TM}u; i++) { acc[i][j] = fma(av[i], bv, acc[i][j]); }
    }
  }
  for (var i = 0u; i < ${TM}u; i++) {
    let row = mStart + i * ${WG_Y}u;
    if (row >= params.M) { continue; }
    for (var j = 0u; j < ${TN}u; j++) {
      let col = nStart + j * ${WG_X}u;
      if (col < params.N) { let at = cBase + row * params.ldc + col; c[at] = ${epilogue(spec, `acc[i][j]${biasTerm(bias, 'row', 'col')}`, 'at', 'row')}; }
    }
  }
}`,
  });
}
