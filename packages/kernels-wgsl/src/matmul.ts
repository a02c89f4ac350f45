import { type Grid, type Kernel, MAX_WORKGROUPS_PER_DIM, makeKernel } from './kernel.js';

/**
 * Batched C[b] = op(A[b]) @ op(B[b]) (+ bias), op = optional transpose, for any M, N, K.
 * A is [M, K] (or [K, M] when transA), B is [K, N] (or [N, K] when transB); batch strides of 0 broadcast.
 * Bias (optional) is added per column (length N) or per row (length M), which covers Linear and 1x1 conv.
 *
 * Register tiling: each invocation owns a TM x TN block of C and accumulates it over K, reading A and B
 * straight from storage. On CPU adapters (lavapipe) workgroup memory is ordinary memory and barriers are
 * costly, so skipping the shared-memory stage is faster there; neighbouring lanes read neighbouring columns
 * of B, which vectorises across the SIMD lanes.
 */
export interface MatmulSpec {
  transA: boolean;
  transB: boolean;
  bias: 'none' | 'col' | 'row';
}

const TM = 4;
const TN = 4;
const WG_X = 16; // threads along N
const WG_Y = 8; // threads along M
export const MATMUL_TILE = { m: TM * WG_Y, n: TN * WG_X };

export function matmulKernel(spec: MatmulSpec): Kernel {
  const { transA, transB, bias } = spec;
  const aIdx = (m: string, k: string) => (transA ? `${k} * params.M + ${m}` : `${m} * params.K + ${k}`);
  const bIdx = (k: string, n: string) => (transB ? `${n} * params.K + ${k}` : `${k} * params.N + ${n}`);
  const biasTerm = bias === 'col' ? ' + bias[col]' : bias === 'row' ? ' + bias[row]' : '';
  return makeKernel({
    key: `matmul:${transA}:${transB}:${bias}`,
    buffers: [
      { name: 'a', access: 'read', type: 'f32' },
      { name: 'b', access: 'read', type: 'f32' },
      ...(bias !== 'none' ? [{ name: 'bias', access: 'read' as const, type: 'f32' }] : []),
      { name: 'c', access: 'read_write', type: 'f32' },
    ],
    uniforms: [
      { name: 'M', type: 'u32' },
      { name: 'N', type: 'u32' },
      { name: 'K', type: 'u32' },
      { name: 'strideA', type: 'u32' },
      { name: 'strideB', type: 'u32' },
      { name: 'tilesN', type: 'u32' },
      { name: 'batches', type: 'u32' },
    ],
    workgroupSize: [WG_X, WG_Y, 1],
    body: /* wgsl */ `
@compute @workgroup_size(${WG_X}, ${WG_Y})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  // x enumerates (row tile, column tile) pairs so that no dimension exceeds the dispatch limit.
  let tileM = wid.x / params.tilesN;
  let tileN = wid.x % params.tilesN;
  let batch = wid.y + wid.z * ${MAX_WORKGROUPS_PER_DIM}u;
  if (batch >= params.batches) { return; }
  let m0 = tileM * ${TM * WG_Y}u + lid.y;
  let n0 = tileN * ${TN * WG_X}u + lid.x;
  let aBase = batch * params.strideA;
  let bBase = batch * params.strideB;
  var acc: array<array<f32, ${TN}>, ${TM}>;
  for (var k = 0u; k < params.K; k++) {
    var av: array<f32, ${TM}>;
    for (var i = 0u; i < ${TM}u; i++) {
      let m = m0 + i * ${WG_Y}u;
      av[i] = select(0.0, a[aBase + ${aIdx('m', 'k')}], m < params.M);
    }
    for (var j = 0u; j < ${TN}u; j++) {
      let n = n0 + j * ${WG_X}u;
      let bv = select(0.0, b[bBase + ${bIdx('k', 'n')}], n < params.N);
      for (var i = 0u; i < ${TM}u; i++) { acc[i][j] = fma(av[i], bv, acc[i][j]); }
    }
  }
  let cBase = batch * params.M * params.N;
  for (var i = 0u; i < ${TM}u; i++) {
    let row = m0 + i * ${WG_Y}u;
    if (row >= params.M) { continue; }
    for (var j = 0u; j < ${TN}u; j++) {
      let col = n0 + j * ${WG_X}u;
      if (col < params.N) { c[cBase + row * params.N + col] = acc[i][j]${biasTerm}; }
    }
  }
}`,
  });
}

export function matmulGrid(M: number, N: number, batch: number): { grid: Grid; tilesN: number } {
  const tilesM = Math.ceil(M / MATMUL_TILE.m);
  const tilesN = Math.ceil(N / MATMUL_TILE.n);
  if (tilesM * tilesN > MAX_WORKGROUPS_PER_DIM) {
    throw new Error(`matmul: ${M}x${N} output needs ${tilesM * tilesN} tiles, more than ${MAX_WORKGROUPS_PER_DIM}`);
  }
  const z = Math.ceil(batch / MAX_WORKGROUPS_PER_DIM);
  return { grid: [tilesM * tilesN, Math.min(batch, MAX_WORKGROUPS_PER_DIM), z], tilesN };
}
