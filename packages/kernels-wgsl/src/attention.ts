import {
  cachedKernel,
  FLAT_INDEX_WGSL,
  type Grid,
  grid1d,
  gridGroups,
  type Kernel,
  makeKernel,
  readOnly,
  readWrite,
} from './kernel.js';

/**
 * Memory-efficient ("flash") attention: out = softmax(q k^T * scale + mask) v without an N x M buffer.
 * Each invocation owns one row (a query in forward and dQ, a key in dK/dV) and streams the other side with an
 * online softmax (forward) or with probabilities recomputed from the saved log-sum-exp (backward,
 * FlashAttention-2 style). No atomics: dQ and dK/dV are separate passes, each writing only its own row.
 *
 * Layout: q [B, H, N, D], k [B, H, M, D], v [B, H, M, Dv]; k and v may broadcast over B and H (strides 0),
 * which is how the flow field shares one coordinate grid (as v) among every batch entry and head.
 * The additive mask, when present, is indexed [b, h, n, m] through its own strides (0 where broadcast).
 */
export interface AttentionSpec {
  D: number;
  Dv: number;
  mask: boolean;
}

const WG = 64;

const UNIFORMS = [
  { name: 'B', type: 'u32' },
  { name: 'H', type: 'u32' },
  { name: 'N', type: 'u32' },
  { name: 'M', type: 'u32' },
  { name: 'scale', type: 'f32' },
  // Strides (in elements) of k/v over batch and head; 0 broadcasts.
  { name: 'kvBatch', type: 'u32' },
  { name: 'kvHead', type: 'u32' },
  { name: 'vBatch', type: 'u32' },
  { name: 'vHead', type: 'u32' },
  // Mask strides over batch, head, query row (column stride is 1).
  { name: 'maskB', type: 'u32' },
  { name: 'maskH', type: 'u32' },
  { name: 'maskN', type: 'u32' },
  // D rounded down to a multiple of 8 (the subgroup forward's block loop; a runtime bound so that the
  // compiler does not unroll it).
  { name: 'dBlocks', type: 'u32' },
] as const;

/** Decodes the flat row id into (b, h, row) and computes base offsets; `rows` is N (query rows) or M (key rows). */
const rowPrologue = (rows: string) => /* wgsl */ `
  let r = flatGroup(wid, nwg) * ${WG}u + lid;
  if (r >= params.B * params.H * ${rows}) { return; }
  let row = r % ${rows};
  let bh = r / ${rows};
  let b = bh / params.H;
  let h = bh % params.H;
  let qBase = bh * params.N * ${'D'};
  let kBase = b * params.kvBatch + h * params.kvHead;
  let vBase = b * params.vBatch + h * params.vHead;
  let maskBase = b * params.maskB + h * params.maskH;`;

function dims(spec: AttentionSpec): string {
  return `const D = ${spec.D}u;\nconst DV = ${spec.Dv}u;`;
}

const maskTerm = (spec: AttentionSpec, n: string, m: string) =>
  spec.mask ? ` + mask[maskBase + ${n} * params.maskN + ${m}]` : '';

const maskBuffer = (spec: AttentionSpec) => (spec.mask ? [readOnly('mask')] : []);

/**
 * Keys per workgroup-memory tile: as many as fit in 16 KiB (the portable WebGPU minimum) next to their
 * values, a power of two, at most 32.
 */
export function attentionKeyTile(spec: Pick<AttentionSpec, 'D' | 'Dv'>): number {
  let t = 32;
  while (t > 1 && t * (spec.D + spec.Dv) > 4096) t >>= 1;
  return t;
}

/** Workgroups of the tiled forward: one per WG query rows of each (b, h). */
export const attentionForwardGrid = (bh: number, rows: number): Grid => gridGroups(bh * Math.ceil(rows / WG));

/**
 * Forward: out [B, H, N, Dv] and the row log-sum-exp lse [B, H, N] that backward needs. A workgroup owns
 * WG query rows of one (b, h) and walks the keys a tile at a time: the tile's keys and values are staged
 * in workgroup memory once for all its rows, every row scores the whole tile, and the online-softmax
 * rescale happens once per tile rather than once per new maximum.
 */
export const attentionForwardKernel = cachedKernel((spec: AttentionSpec): Kernel => {
  const TK = attentionKeyTile(spec);
  return makeKernel({
    key: `attn:fwd-tiled:${spec.D}:${spec.Dv}:${spec.mask}`,
    buffers: [readOnly('q'), readOnly('k'), readOnly('v'), ...maskBuffer(spec), readWrite('out'), readWrite('lse')],
    uniforms: UNIFORMS,
    workgroupSize: [WG, 1, 1],
    body: /* wgsl */ `
${dims(spec)}
const TK = ${TK}u;
const NEG = -3.402823e38;
${FLAT_INDEX_WGSL}
var<workgroup> kTile: array<f32, ${TK * spec.D}>;
var<workgroup> vTile: array<f32, ${TK * spec.Dv}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let tiles = (params.N + ${WG - 1}u) / ${WG}u;
  let g = flatGroup(wid, nwg);
  let bh = g / tiles;
  if (bh >= params.B * params.H) { return; }
  let row = (g % tiles) * ${WG}u + lid;
  let valid = row < params.N;
  let b = bh / params.H;
  let h = bh % params.H;
  let qBase = bh * params.N * D;
  let kBase = b * params.kvBatch + h * params.kvHead;
  let vBase = b * params.vBatch + h * params.vHead;
  let maskBase = b * params.maskB + h * params.maskH;
  var qv: array<f32, D>;
  if (valid) {
    for (var d = 0u; d < D; d++) { qv[d] = q[qBase + row * D + d] * params.scale; }
  }
  var acc: array<f32, DV>;
  var mx = NEG;
  var denom = 0.0;
  for (var m0 = 0u; m0 < params.M; m0 += TK) {
    for (var i = lid; i < TK * D; i += ${WG}u) {
      let m = m0 + i / D;
      kTile[i] = select(0.0, k[kBase + m * D + i % D], m < params.M);
    }
    for (var i = lid; i < TK * DV; i += ${WG}u) {
      let m = m0 + i / DV;
      vTile[i] = select(0.0, v[vBase + m * DV + i % DV], m < params.M);
    }
    workgroupBarrier();
    // A runtime tile length keeps the compiler from fully unrolling the key loops (slow to compile on
    // LLVM-based drivers) and drops the out-of-range keys of the last tile.
    let len = min(TK, params.M - m0);
    var s: array<f32, TK>;
    var tileMax = NEG;
    for (var j = 0u; j < len; j++) {
      var a = 0.0;
      for (var d = 0u; d < D; d++) { a = fma(qv[d], kTile[j * D + d], a); }
      ${spec.mask ? 'if (valid) { a += mask[maskBase + row * params.maskN + m0 + j]; }' : ''}
      s[j] = a;
      tileMax = max(tileMax, a);
    }
    let newMax = max(mx, tileMax);
    // Rescale what was accumulated under the old maximum, once per tile.
    let c = exp(mx - newMax);
    denom *= c;
    for (var d = 0u; d < DV; d++) { acc[d] *= c; }
    for (var j = 0u; j < len; j++) {
      let p = exp(s[j] - newMax);
      denom += p;
      for (var d = 0u; d < DV; d++) { acc[d] = fma(p, vTile[j * DV + d], acc[d]); }
    }
    mx = newMax;
    workgroupBarrier();
  }
  if (valid) {
    let inv = 1.0 / denom;
    for (var d = 0u; d < DV; d++) { out[(bh * params.N + row) * DV + d] = acc[d] * inv; }
    lse[bh * params.N + row] = mx + log(denom);
  }
}`,
  });
});

/**
 * Forward for CPU adapters with subgroups of at least 8 lanes (lavapipe), where every invocation-varying
 * load is a per-lane loop and workgroup memory costs barriers: the matmul 'broadcast' kernel's scheme applied
 * to both products. A workgroup is one 8-lane subgroup owning 8 query rows of one (b, h); it walks the keys
 * 32 at a time. Scores: lane l holds keys n0 + l + 8j (j < 4) of every row as one vec4 per row; K rows are
 * read along D as vec4 and Q values reach every lane through subgroupBroadcast. Softmax: row maxima and sums
 * are subgroupMax / subgroupAdd. Output: lane l owns columns 32c + 4l..4l+3 of every row (c < ceil(Dv / 32)),
 * each probability is broadcast from the lane holding it and V rows are read as vec4.
 */
export interface AttentionBroadcastSpec extends AttentionSpec {
  /** D (resp. Dv) is a multiple of 4, so rows of q and k (resp. v) can be read as vec4. */
  vecQK: boolean;
  vecV: boolean;
}

export const ATTENTION_BROADCAST_ROWS = 8;

/** Workgroups of the subgroup forward: one per 8 query rows of each (b, h). */
export const attentionBroadcastGrid = (bh: number, rows: number): Grid =>
  gridGroups(bh * Math.ceil(rows / ATTENTION_BROADCAST_ROWS));

export const attentionForwardBroadcastKernel = cachedKernel((spec: AttentionBroadcastSpec): Kernel => {
  const { D, Dv, vecQK, vecV } = spec;
  const rows = range(8);
  const keys = range(4);
  const chunks = range(Math.ceil(Dv / 32));
  const quad = (buf: string, vec: boolean, i: string) =>
    vec ? `${buf}[(${i}) / 4u]` : `vec4<f32>(${buf}[${i}], ${buf}[${i} + 1u], ${buf}[${i} + 2u], ${buf}[${i} + 3u])`;
  const scalar = (buf: string, vec: boolean, i: string) => (vec ? `${buf}[(${i}) / 4u][(${i}) % 4u]` : `${buf}[${i}]`);
  const key = (j: number) => `n0 + lane + ${8 * j}u`;
  // Scores of one block of 8 d: lane l's q values (row m0 + l) are broadcast, K rows regrouped per d.
  const scoreBlock = range(8)
    .map((dd) => {
      const kv = `vec4<f32>(${keys.map((j) => `kc${j}${dd >> 2}[${dd & 3}]`).join(', ')})`;
      return `{ let kv = ${kv};\n      ${rows.map((i) => `s${i} = fma(vec4<f32>(subgroupBroadcast(ql${dd >> 2}[${dd & 3}], ${i}u)), kv, s${i});`).join('\n      ')} }`;
    })
    .join('\n      ');
  const scoreTail = `{ let kv = vec4<f32>(${keys.map((j) => scalar('k', vecQK, `kRow${j} + d`)).join(', ')});
      let qd = ${scalar('q', vecQK, 'qRow + d')};
      ${rows.map((i) => `s${i} = fma(vec4<f32>(subgroupBroadcast(qd, ${i}u)), kv, s${i});`).join('\n      ')} }`;
  const maskAdd = spec.mask
    ? rows
        .map(
          (i) =>
            `s${i} += vec4<f32>(${keys.map((j) => `mask[maskBase + min(m0 + ${i}u, params.N - 1u) * params.maskN + min(${key(j)}, params.M - 1u)]`).join(', ')});`,
        )
        .join('\n    ')
    : '';
  // Lane l's columns of chunk c start at 32c + 4l (clamped so that loads stay inside the row; such
  // columns are never stored).
  const vLoad = (c: number) =>
    vecV
      ? `v[(vRow + min(${32 * c}u + 4u * lane, DV - 4u)) / 4u]`
      : `vec4<f32>(${range(4)
          .map((e) => `v[vRow + min(${32 * c}u + 4u * lane + ${e}u, DV - 1u)]`)
          .join(', ')})`;
  // Keys n0 + L + 8j: the probability of row i sits in lane L, component j. The loop over j stays a loop
  // (runtime bound, also skipping groups past M); the 8 lanes are unrolled because subgroupBroadcast
  // takes a constant lane.
  const valueStep = `for (var j = 0u; j < min(4u, (params.M - n0 + 7u) / 8u); j++) {
      ${range(8)
        .map(
          (L) => `{ let vRow = vBase + min(n0 + ${L}u + 8u * j, params.M - 1u) * DV;
      ${chunks.map((c) => `let v${c} = ${vLoad(c)};`).join(' ')}
      ${rows.map((i) => `{ let p = vec4<f32>(subgroupBroadcast(s${i}[j], ${L}u)); ${chunks.map((c) => `o${i}_${c} = fma(p, v${c}, o${i}_${c});`).join(' ')} }`).join('\n      ')} }`,
        )
        .join('\n      ')}
    }`;
  const softmaxStep = rows
    .map(
      (i) => `{ let nm = max(mx${i}, subgroupMax(max(max(s${i}.x, s${i}.y), max(s${i}.z, s${i}.w))));
      let c = exp(mx${i} - nm);
      s${i} = exp(s${i} - nm);
      den${i} = den${i} * c + subgroupAdd(s${i}.x + s${i}.y + s${i}.z + s${i}.w);
      ${chunks.map((ch) => `o${i}_${ch} *= c;`).join(' ')}
      mx${i} = nm; }`,
    )
    .join('\n    ');
  const stores = rows
    .map(
      (i) => `if (m0 + ${i}u < params.N) {
    let outRow = (bh * params.N + m0 + ${i}u) * DV;
    let inv = 1.0 / den${i};
    ${chunks
      .map((c) =>
        range(4)
          .map(
            (e) =>
              `if (${32 * c}u + 4u * lane + ${e}u < DV) { out[outRow + ${32 * c}u + 4u * lane + ${e}u] = o${i}_${c}[${e}] * inv; }`,
          )
          .join('\n    '),
      )
      .join('\n    ')}
    if (lane == 0u) { lse[bh * params.N + m0 + ${i}u] = mx${i} + log(den${i}); }
  }`,
    )
    .join('\n  ');
  const qkType = vecQK ? 'vec4<f32>' : 'f32';
  return makeKernel({
    key: `attn:fwd-broadcast:${D}:${Dv}:${spec.mask}:${vecQK}:${vecV}`,
    buffers: [
      readOnly('q', qkType),
      readOnly('k', qkType),
      readOnly('v', vecV ? 'vec4<f32>' : 'f32'),
      ...maskBuffer(spec),
      readWrite('out'),
      readWrite('lse'),
    ],
    uniforms: UNIFORMS.map((u) => ({ ...u })),
    workgroupSize: [8, 1, 1],
    body: /* wgsl */ `
${dims(spec)}
const NEG = -3.402823e38;
${FLAT_INDEX_WGSL}
@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
  let tiles = (params.N + 7u) / 8u;
  let g = flatGroup(wid, nwg);
  let bh = g / tiles;
  if (bh >= params.B * params.H) { return; }
  let m0 = (g % tiles) * 8u;
  let b = bh / params.H;
  let h = bh % params.H;
  let qRow = (bh * params.N + min(m0 + lane, params.N - 1u)) * D;
  let kBase = b * params.kvBatch + h * params.kvHead;
  let vBase = b * params.vBatch + h * params.vHead;
  let maskBase = b * params.maskB + h * params.maskH;
  ${rows.map((i) => `var mx${i} = NEG; var den${i} = 0.0; ${chunks.map((c) => `var o${i}_${c} = vec4<f32>();`).join(' ')}`).join('\n  ')}
  for (var n0 = 0u; n0 < params.M; n0 += 32u) {
    ${keys.map((j) => `let kRow${j} = kBase + min(${key(j)}, params.M - 1u) * D;`).join('\n    ')}
    ${rows.map((i) => `var s${i} = vec4<f32>();`).join(' ')}
    for (var d0 = 0u; d0 < params.dBlocks; d0 += 8u) {
      let ql0 = ${quad('q', vecQK, 'qRow + d0')};
      let ql1 = ${quad('q', vecQK, 'qRow + d0 + 4u')};
      ${keys.map((j) => `let kc${j}0 = ${quad('k', vecQK, `kRow${j} + d0`)}; let kc${j}1 = ${quad('k', vecQK, `kRow${j} + d0 + 4u`)};`).join('\n      ')}
      ${scoreBlock}
    }
    for (var d = params.dBlocks; d < D; d++) {
      ${scoreTail}
    }
    let live = vec4<bool>(${keys.map((j) => `${key(j)} < params.M`).join(', ')});
    ${rows.map((i) => `s${i} *= params.scale;`).join(' ')}
    ${maskAdd}
    ${rows.map((i) => `s${i} = select(vec4<f32>(NEG), s${i}, live);`).join('\n    ')}
    ${softmaxStep}
    ${valueStep}
  }
  ${stores}
}`,
  });
});

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** dQ: per query row, dq = scale * sum_m p (dO.v_m - delta) k_m with p recomputed from lse. */
export const attentionGradQKernel = cachedKernel(
  (spec: AttentionSpec): Kernel =>
    makeKernel({
      key: `attn:dq:${spec.D}:${spec.Dv}:${spec.mask}`,
      buffers: [
        readOnly('q'),
        readOnly('k'),
        readOnly('v'),
        ...maskBuffer(spec),
        readOnly('dout'),
        readOnly('lse'),
        readOnly('delta'),
        readWrite('dq'),
      ],
      uniforms: UNIFORMS,
      workgroupSize: [WG, 1, 1],
      body: /* wgsl */ `
${dims(spec)}
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  ${rowPrologue('params.N')}
  var qv: array<f32, D>;
  for (var d = 0u; d < D; d++) { qv[d] = q[qBase + row * D + d] * params.scale; }
  var go: array<f32, DV>;
  for (var d = 0u; d < DV; d++) { go[d] = dout[(bh * params.N + row) * DV + d]; }
  let l = lse[bh * params.N + row];
  let dl = delta[bh * params.N + row];
  var acc: array<f32, D>;
  for (var m = 0u; m < params.M; m++) {
    var s = 0.0;
    for (var d = 0u; d < D; d++) { s = fma(qv[d], k[kBase + m * D + d], s); }
    let p = exp(s${maskTerm(spec, 'row', 'm')} - l);
    var dp = 0.0;
    for (var d = 0u; d < DV; d++) { dp = fma(go[d], v[vBase + m * DV + d], dp); }
    let ds = p * (dp - dl);
    for (var d = 0u; d < D; d++) { acc[d] = fma(ds, k[kBase + m * D + d], acc[d]); }
  }
  for (var d = 0u; d < D; d++) { dq[qBase + row * D + d] = acc[d] * params.scale; }
}`,
    }),
);

/**
 * dK, dV: per key row of one (b, h), dv = sum_n p dO_n and dk = scale * sum_n p (dO_n.v - delta_n) q_n.
 * When k/v broadcast over batch or heads, the caller sums these per-(b, h) gradients afterwards.
 */
export const attentionGradKVKernel = cachedKernel(
  (spec: AttentionSpec & { wantV: boolean }): Kernel =>
    makeKernel({
      key: `attn:dkv:${spec.D}:${spec.Dv}:${spec.mask}:${spec.wantV}`,
      buffers: [
        readOnly('q'),
        readOnly('k'),
        readOnly('v'),
        ...maskBuffer(spec),
        readOnly('dout'),
        readOnly('lse'),
        readOnly('delta'),
        readWrite('dk'),
        ...(spec.wantV ? [readWrite('dv')] : []),
      ],
      uniforms: UNIFORMS,
      workgroupSize: [WG, 1, 1],
      body: /* wgsl */ `
${dims(spec)}
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  ${rowPrologue('params.M')}
  var kv: array<f32, D>;
  for (var d = 0u; d < D; d++) { kv[d] = k[kBase + row * D + d]; }
  var vv: array<f32, DV>;
  for (var d = 0u; d < DV; d++) { vv[d] = v[vBase + row * DV + d]; }
  var dkAcc: array<f32, D>;
  var dvAcc: array<f32, DV>;
  for (var n = 0u; n < params.N; n++) {
    let qRow = qBase + n * D;
    var s = 0.0;
    for (var d = 0u; d < D; d++) { s = fma(q[qRow + d], kv[d], s); }
    let p = exp(s * params.scale${maskTerm(spec, 'n', 'row')} - lse[bh * params.N + n]);
    let oRow = (bh * params.N + n) * DV;
    var dp = 0.0;
    for (var d = 0u; d < DV; d++) {
      let g = dout[oRow + d];
      dp = fma(g, vv[d], dp);
      ${spec.wantV ? 'dvAcc[d] = fma(p, g, dvAcc[d]);' : ''}
    }
    let ds = p * (dp - delta[bh * params.N + n]);
    for (var d = 0u; d < D; d++) { dkAcc[d] = fma(ds, q[qRow + d], dkAcc[d]); }
  }
  let outRow = bh * params.M + row;
  for (var d = 0u; d < D; d++) { dk[outRow * D + d] = dkAcc[d] * params.scale; }
  ${spec.wantV ? 'for (var d = 0u; d < DV; d++) { dv[outRow * DV + d] = dvAcc[d]; }' : ''}
}`,
    }),
);

export const attentionGrid = (rows: number): Grid => grid1d(rows, WG);
