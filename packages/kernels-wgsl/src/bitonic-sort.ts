import { NAN_WGSL } from './elementwise.js';
import {
  cachedKernel,
  fields,
  flatKernel,
  type Grid,
  grid1d,
  gridGroups,
  type Kernel,
  readOnly,
  readWrite,
} from './kernel.js';

/**
 * Bitonic sort of (key, index) pairs stored as vec2<u32>, in independent segments of a power-of-two length L,
 * in place. Order: key descending, ties by index ascending, so the sort is stable and deterministic.
 *
 * Two schedules of the same compare-exchange network (`bitonicSchedule` lists the dispatches):
 * - 'workgroup' (GPUs), B = min(L, 1024) elements per workgroup tile:
 *     bitonicLocalKernel(B, 'sort')             every stage with k <= B, in workgroup memory
 *     for k = 2B .. L:
 *       bitonicFusedKernel(1) (k, s = j) for j = k/2 .. B   one dispatch per compare-exchange stage
 *       bitonicLocalKernel(B, 'merge') with k       the stages j = B/2 .. 1 in workgroup memory
 * - 'fused' (CPU adapters, where workgroup memory and barriers are no faster than global memory): every
 *   dispatch runs up to three consecutive stages j, j/2, j/4 in registers (bitonicFusedKernel), each
 *   invocation owning the 8 elements those stages exchange among themselves, so the pairs make a third as many
 *   trips through memory.
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
  return flatKernel({
    key: `bitonic.local:${block}:${phase}`,
    buffers: [readWrite('pairs', 'vec2<u32>')],
    uniforms: fields('u32', 'L', 'k', 'blocks'),
    workgroupSize: WG,
    per: 'workgroup',
    index: 'blk',
    bound: 'params.blocks',
    helpers: /* wgsl */ `
${BEFORE_WGSL}
var<workgroup> tile: array<vec2<u32>, ${block}>;`,
    body: /* wgsl */ `
  let start = blk * ${block}u;
  for (var t = lid; t < ${block}u; t += ${WG}u) { tile[t] = pairs[start + t]; }
  workgroupBarrier();
  ${stages}
  for (var t = lid; t < ${block}u; t += ${WG}u) { pairs[start + t] = tile[t]; }`,
  });
});

/**
 * Stages j, j/2, ..., j/2^(r-1) of one k in one pass (r = 1..3). An invocation owns the 2^r elements
 * base + m * s (s = j / 2^(r-1), m < 2^r), which those stages exchange only among themselves; base has zeros in
 * the r bits from log2(s) up, so all of them share bit k of their in-segment index and hence one direction.
 */
export const bitonicFusedKernel = cachedKernel((r: number): Kernel => {
  if (!(Number.isInteger(r) && r >= 1 && r <= 3)) throw new Error(`bitonicFusedKernel: r must be 1, 2 or 3, got ${r}`);
  const n = 1 << r;
  const exchanges: string[] = [];
  for (let d = n >> 1; d >= 1; d >>= 1) {
    for (let m = 0; m < n; m++) {
      if ((m & d) === 0)
        exchanges.push(`  if (before(v${m + d}, v${m}) == up) { let t = v${m}; v${m} = v${m + d}; v${m + d} = t; }`);
    }
  }
  return flatKernel({
    key: `bitonic.fused:${r}`,
    buffers: [readWrite('pairs', 'vec2<u32>')],
    uniforms: fields('u32', 'L', 'k', 's', 'groups'),
    workgroupSize: WG,
    index: 'g',
    bound: 'params.groups',
    helpers: BEFORE_WGSL,
    body: /* wgsl */ `
  let s = params.s;
  let low = g & (s - 1u);
  let base = ((g - low) << ${r}u) | low;
  let up = ((base & (params.L - 1u)) & params.k) == 0u;
${Array.from({ length: n }, (_, m) => `  var v${m} = pairs[base + ${m}u * s];`).join('\n')}
${exchanges.join('\n')}
${Array.from({ length: n }, (_, m) => `  pairs[base + ${m}u * s] = v${m};`).join('\n')}`,
  });
});

export type BitonicDispatch =
  | { kernel: Kernel; uniforms: { L: number; k: number; blocks: number }; grid: Grid }
  | { kernel: Kernel; uniforms: { L: number; k: number; s: number; groups: number }; grid: Grid };

/** The dispatches that sort `segments` segments of length L (a power of two), in order (see the module comment). */
export function bitonicSchedule(
  segments: number,
  L: number,
  schedule: 'workgroup' | 'fused' = 'workgroup',
): BitonicDispatch[] {
  if (L < 2) return [];
  if (schedule === 'fused') {
    const out: BitonicDispatch[] = [];
    const total = segments * L;
    for (let k = 2; k <= L; k *= 2) {
      for (let j = k / 2; j >= 1; ) {
        const r = Math.min(3, Math.log2(j) + 1);
        const s = j >> (r - 1);
        const groups = total >> r;
        out.push({ kernel: bitonicFusedKernel(r), uniforms: { L, k, s, groups }, grid: grid1d(groups, WG) });
        j = s / 2;
      }
    }
    return out;
  }
  const block = Math.min(L, SORT_MAX_BLOCK);
  const blocks = (segments * L) / block;
  const out: BitonicDispatch[] = [
    { kernel: bitonicLocalKernel(block, 'sort'), uniforms: { L, k: 0, blocks }, grid: gridGroups(blocks) },
  ];
  const half = (segments * L) / 2;
  for (let k = 2 * block; k <= L; k *= 2) {
    for (let j = k / 2; j >= block; j /= 2) {
      out.push({ kernel: bitonicFusedKernel(1), uniforms: { L, k, s: j, groups: half }, grid: grid1d(half, WG) });
    }
    out.push({ kernel: bitonicLocalKernel(block, 'merge'), uniforms: { L, k, blocks }, grid: gridGroups(blocks) });
  }
  return out;
}

export const nextPowerOfTwo = (n: number): number => (n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n)));

/**
 * Keys of a float tensor [rows, n] for sorting: pairs[r * L + j] = (key(x[r, j]), j), padded to L with
 * (0, j) which sorts last. key maps floats to u32 in the same order (NaN above +inf, -0 equal to 0, as PyTorch sorts);
 * ascending sorts complement it.
 */
export const sortKeysKernel = cachedKernel(
  (descending: boolean): Kernel =>
    flatKernel({
      key: `sort.keys:${descending}`,
      buffers: [readOnly('x'), readWrite('pairs', 'vec2<u32>')],
      uniforms: fields('u32', 'n', 'L', 'total'),
      workgroupSize: WG,
      index: 'id',
      bound: 'params.total',
      helpers: NAN_WGSL,
      body: /* wgsl */ `
  let r = id / params.L;
  let j = id % params.L;
  var key = 0u;
  if (j < params.n) {
    let v = x[r * params.n + j];
    // -0 and +0 are equal keys (PyTorch compares values, so a stable sort keeps their order).
    let u = select(bitcast<u32>(v), 0u, v == 0.0);
    var ordered = select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
    // NaN of either sign sorts above +inf (PyTorch puts NaN last ascending, first descending); tested on the
    // bits, since v != v may be folded away.
    if (isnan_(v)) { ordered = 0xffffffffu; }
    key = ${descending ? 'ordered' : '~ordered'};
  }
  pairs[id] = vec2<u32>(key, j);`,
    }),
);

/** indices[r, j] = pairs[r * L + j].y for j < n: the permutation a sort produced. */
export const sortIndicesKernel = cachedKernel(
  (): Kernel =>
    flatKernel({
      key: 'sort.indices',
      buffers: [readOnly('pairs', 'vec2<u32>'), readWrite('indices', 'i32')],
      uniforms: fields('u32', 'n', 'L', 'total'),
      workgroupSize: WG,
      index: 'id',
      bound: 'params.total',
      body: /* wgsl */ `
  indices[id] = i32(pairs[(id / params.n) * params.L + id % params.n].y);`,
    }),
);

export const sortGrid = (total: number): Grid => grid1d(total, WG);
