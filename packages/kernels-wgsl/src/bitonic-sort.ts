import { cachedKernel, FLAT_INDEX_WGSL, type Grid, type Kernel, grid1d, gridGroups, makeKernel } from './kernel.js';

/**
 * Bitonic sort of (key, index) pairs stored as vec2<u32>, in independent segments of a power-of-two length L,
 * in place. Order: key descending, ties by index ascending, so the sort is stable and deterministic.
 *
 * Schedule for a segment (B = min(L, 1024) elements fit in workgroup memory):
 *   bitonicLocalKernel(B, 'sort')             every stage with k <= B, in workgroup memory
 *   for k = 2B .. L:
 *     bitonicGlobalKernel (k, j)  for j = k/2 .. B   one dispatch per compare-exchange stage
 *     bitonicLocalKernel(B, 'merge') with k       the stages j = B/2 .. 1 in workgroup memory
 * (`bitonicSchedule` lists the dispatches.)
 */
export const SORT_MAX_BLOCK = 1024;
const WG = 64;

const BEFORE_WGSL = /* wgsl */ `
fn before(a: vec2<u32>, b: vec2<u32>) -> bool { return a.x > b.x || (a.x == b.x && a.y < b.y); }
`;

/** Index of the lower element of compare-exchange pair p at distance j (a power of two). */
const PAIR_INDEX = 'let i = ((p & ~(j - 1u)) << 1u) | (p & (j - 1u));';

export const bitonicLocalKernel = cachedKernel((block: number, phase: 'sort' | 'merge'): Kernel => {
  const stage = /* wgsl */ `
    for (var p = lid; p < ${block / 2}u; p += ${WG}u) {
      ${PAIR_INDEX}
      let up = (((start + i) & (params.L - 1u)) & k) == 0u;
      let a = tile[i];
      let b = tile[i + j];
      if (before(b, a) == up) {
        tile[i] = b;
        tile[i + j] = a;
      }
    }
    workgroupBarrier();`;
  const stages =
    phase === 'sort'
      ? `for (var k = 2u; k <= ${block}u; k = k << 1u) {
    for (var j = k >> 1u; j > 0u; j = j >> 1u) {${stage}
    }
  }`
      : `let k = params.k;
  for (var j = ${block / 2}u; j > 0u; j = j >> 1u) {${stage}
  }`;
  return makeKernel({
    key: `bitonic.local:${block}:${phase}`,
    buffers: [{ name: 'pairs', access: 'read_write', type: 'vec2<u32>' }],
    uniforms: [
      { name: 'L', type: 'u32' },
      { name: 'k', type: 'u32' },
      { name: 'blocks', type: 'u32' },
    ],
    workgroupSize: [WG, 1, 1],
    body: /* wgsl */ `
${FLAT_INDEX_WGSL}
${BEFORE_WGSL}
var<workgroup> tile: array<vec2<u32>, ${block}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let blk = flatGroup(wid, nwg);
  if (blk >= params.blocks) { return; }
  let start = blk * ${block}u;
  for (var t = lid; t < ${block}u; t += ${WG}u) { tile[t] = pairs[start + t]; }
  workgroupBarrier();
  ${stages}
  for (var t = lid; t < ${block}u; t += ${WG}u) { pairs[start + t] = tile[t]; }
}`,
  });
});

export const bitonicGlobalKernel = cachedKernel(
  (): Kernel =>
    makeKernel({
      key: 'bitonic.global',
      buffers: [{ name: 'pairs', access: 'read_write', type: 'vec2<u32>' }],
      uniforms: [
        { name: 'L', type: 'u32' },
        { name: 'k', type: 'u32' },
        { name: 'j', type: 'u32' },
        { name: 'half', type: 'u32' },
      ],
      workgroupSize: [WG, 1, 1],
      body: /* wgsl */ `
${FLAT_INDEX_WGSL}
${BEFORE_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = flatGroup(wid, nwg) * ${WG}u + lid;
  if (p >= params.half) { return; }
  let j = params.j;
  ${PAIR_INDEX}
  let up = ((i & (params.L - 1u)) & params.k) == 0u;
  let a = pairs[i];
  let b = pairs[i + j];
  if (before(b, a) == up) {
    pairs[i] = b;
    pairs[i + j] = a;
  }
}`,
    }),
);

export type BitonicDispatch =
  | { kernel: Kernel; uniforms: { L: number; k: number; blocks: number }; grid: Grid }
  | { kernel: Kernel; uniforms: { L: number; k: number; j: number; half: number }; grid: Grid };

/** The dispatches that sort `segments` segments of length L (a power of two), in order. */
export function bitonicSchedule(segments: number, L: number): BitonicDispatch[] {
  if (L < 2) return [];
  const block = Math.min(L, SORT_MAX_BLOCK);
  const blocks = (segments * L) / block;
  const out: BitonicDispatch[] = [{ kernel: bitonicLocalKernel(block, 'sort'), uniforms: { L, k: 0, blocks }, grid: gridGroups(blocks) }];
  const half = (segments * L) / 2;
  for (let k = 2 * block; k <= L; k *= 2) {
    for (let j = k / 2; j >= block; j /= 2) {
      out.push({ kernel: bitonicGlobalKernel(), uniforms: { L, k, j, half }, grid: grid1d(half, WG) });
    }
    out.push({ kernel: bitonicLocalKernel(block, 'merge'), uniforms: { L, k, blocks }, grid: gridGroups(blocks) });
  }
  return out;
}

export const nextPowerOfTwo = (n: number): number => (n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n)));

/**
 * Keys of a float tensor [rows, n] for sorting: pairs[r * L + j] = (key(x[r, j]), j), padded to L with
 * (0, j) which sorts last. key maps floats to u32 in the same order (NaN above +inf, as PyTorch sorts it);
 * ascending sorts complement it.
 */
export const sortKeysKernel = cachedKernel(
  (descending: boolean): Kernel =>
    makeKernel({
      key: `sort.keys:${descending}`,
      buffers: [
        { name: 'x', access: 'read', type: 'f32' },
        { name: 'pairs', access: 'read_write', type: 'vec2<u32>' },
      ],
      uniforms: [
        { name: 'n', type: 'u32' },
        { name: 'L', type: 'u32' },
        { name: 'total', type: 'u32' },
      ],
      workgroupSize: [WG, 1, 1],
      body: /* wgsl */ `
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let id = flatGroup(wid, nwg) * ${WG}u + lid;
  if (id >= params.total) { return; }
  let r = id / params.L;
  let j = id % params.L;
  var key = 0u;
  if (j < params.n) {
    let v = x[r * params.n + j];
    let u = bitcast<u32>(v);
    var ordered = select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
    if (v != v) { ordered = 0xffffffffu; }
    key = ${descending ? 'ordered' : '~ordered'};
  }
  pairs[id] = vec2<u32>(key, j);
}`,
    }),
);

/** indices[r, j] = pairs[r * L + j].y for j < n: the permutation a sort produced. */
export const sortIndicesKernel = cachedKernel(
  (): Kernel =>
    makeKernel({
      key: 'sort.indices',
      buffers: [
        { name: 'pairs', access: 'read', type: 'vec2<u32>' },
        { name: 'indices', access: 'read_write', type: 'i32' },
      ],
      uniforms: [
        { name: 'n', type: 'u32' },
        { name: 'L', type: 'u32' },
        { name: 'total', type: 'u32' },
      ],
      workgroupSize: [WG, 1, 1],
      body: /* wgsl */ `
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let id = flatGroup(wid, nwg) * ${WG}u + lid;
  if (id >= params.total) { return; }
  indices[id] = i32(pairs[(id / params.n) * params.L + id % params.n].y);
}`,
    }),
);

export const sortGrid = (total: number): Grid => grid1d(total, WG);
