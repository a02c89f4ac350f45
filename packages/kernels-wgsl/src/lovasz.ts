import {
  cachedKernel,
  flatKernel,
  type Grid,
  grid1d,
  gridGroups,
  type Kernel,
  makeKernel,
  readOnly,
  readWrite,
} from './kernel.js';

/**
 * Lovasz-softmax (Berman et al. 2018) for probabilities [N, C, HW] and int32 labels [N, HW]; P = N * HW
 * pixels, one segment of L = nextPow2(P) (key, pixel) pairs per class c.
 *
 * 1. keys:     key = bits(|fg - p_c|) + 1 for labelled pixels (float bits of a value >= 0 order like the
 *              value), 0 for ignored pixels and padding, which therefore sort after every labelled one.
 * 2. (bitonic sort, errors descending)
 * 3. scan:     per block of the sorted segment, the inclusive count of foreground pixels (fg = label == c)
 *              and the block's total.
 * 4. offsets:  per class, an exclusive scan of the block totals; gts[c] = foreground count.
 * 5. grad:     at sorted position j with cum = foreground count up to j, the Jaccard loss
 *              J_j = 1 - (gts - cum) / (gts + (j + 1) - cum) and its increment g_j = J_j - J_{j-1} (the
 *              Lovasz extension's gradient); writes error_j * g_j (summed per class for the loss) and
 *              g_j * sign(p - fg) at the pixel (d loss_c / d p_c; ignored pixels get 0).
 */
const WG = 64;
export const LOVASZ_SCAN_BLOCK = 1024;

const PIXEL = /* wgsl */ `
fn probaIndex(pixel: u32, c: u32) -> u32 {
  return ((pixel / params.HW) * params.C + c) * params.HW + pixel % params.HW;
}
`;

const UNIFORMS = [
  { name: 'P', type: 'u32' as const },
  { name: 'C', type: 'u32' as const },
  { name: 'HW', type: 'u32' as const },
  { name: 'L', type: 'u32' as const },
  { name: 'ignore', type: 'i32' as const },
  { name: 'block', type: 'u32' as const },
];

export const lovaszKeysKernel = cachedKernel(
  (): Kernel =>
    flatKernel({
      key: 'lovasz.keys',
      buffers: [readOnly('probas'), readOnly('labels', 'i32'), readWrite('pairs', 'vec2<u32>')],
      uniforms: UNIFORMS,
      workgroupSize: WG,
      index: 'id',
      bound: 'params.C * params.L',
      helpers: PIXEL,
      body: /* wgsl */ `
  let c = id / params.L;
  let i = id % params.L;
  var key = 0u;
  if (i < params.P) {
    let lab = labels[i];
    if (lab != params.ignore) {
      let fg = select(0.0, 1.0, lab == i32(c));
      key = bitcast<u32>(abs(fg - probas[probaIndex(i, c)])) + 1u;
    }
  }
  pairs[id] = vec2<u32>(key, i);`,
    }),
);

const FG = /* wgsl */ `
fn isFg(pr: vec2<u32>, c: u32) -> u32 { return select(0u, 1u, pr.x != 0u && labels[pr.y] == i32(c)); }
`;

/** Block-local inclusive foreground counts; each invocation scans block / 64 consecutive positions. */
export const lovaszScanKernel = cachedKernel(
  (): Kernel =>
    flatKernel({
      key: 'lovasz.scan',
      buffers: [
        readOnly('pairs', 'vec2<u32>'),
        readOnly('labels', 'i32'),
        readWrite('cum', 'u32'),
        readWrite('totals', 'u32'),
      ],
      uniforms: UNIFORMS,
      workgroupSize: WG,
      per: 'workgroup',
      index: 'blk',
      bound: null,
      helpers: /* wgsl */ `
${FG}
var<workgroup> part: array<u32, ${WG}>;`,
      body: /* wgsl */ `
  if (blk * params.block >= params.C * params.L) { return; }
  let c = (blk * params.block) / params.L;
  let per = max(params.block / ${WG}u, 1u);
  let first = blk * params.block + lid * per;
  let busy = lid * per < params.block;
  var count = 0u;
  if (busy) {
    for (var q = 0u; q < per; q++) { count += isFg(pairs[first + q], c); }
  }
  part[lid] = count;
  workgroupBarrier();
  if (lid == 0u) {
    var run = 0u;
    for (var k = 0u; k < ${WG}u; k++) {
      let v = part[k];
      part[k] = run;
      run += v;
    }
    totals[blk] = run;
  }
  workgroupBarrier();
  if (busy) {
    var run = part[lid];
    for (var q = 0u; q < per; q++) {
      run += isFg(pairs[first + q], c);
      cum[first + q] = run;
    }
  }`,
    }),
);

/** Per class: exclusive scan of the block totals in place, and the class's foreground count gts[c]. */
export const lovaszOffsetsKernel = cachedKernel(
  (): Kernel =>
    flatKernel({
      key: 'lovasz.offsets',
      buffers: [readWrite('totals', 'u32'), readWrite('gts', 'u32')],
      uniforms: UNIFORMS,
      workgroupSize: WG,
      index: 'c',
      bound: 'params.C',
      body: /* wgsl */ `
  let blocks = params.L / params.block;
  var run = 0u;
  for (var b = 0u; b < blocks; b++) {
    let v = totals[c * blocks + b];
    totals[c * blocks + b] = run;
    run += v;
  }
  gts[c] = run;`,
    }),
);

export const lovaszGradKernel = cachedKernel(
  (): Kernel =>
    flatKernel({
      key: 'lovasz.grad',
      buffers: [
        readOnly('pairs', 'vec2<u32>'),
        readOnly('labels', 'i32'),
        readOnly('probas'),
        readOnly('cum', 'u32'),
        readOnly('totals', 'u32'),
        readOnly('gts', 'u32'),
        readWrite('contrib'),
        readWrite('grad'),
      ],
      uniforms: UNIFORMS,
      workgroupSize: WG,
      index: 'id',
      bound: 'params.C * params.L',
      helpers: /* wgsl */ `
${PIXEL}
${FG}`,
      body: /* wgsl */ `
  let c = id / params.L;
  let j = id % params.L;
  let pr = pairs[id];
  if (pr.x == 0u) {
    contrib[id] = 0.0;
    if (pr.y < params.P) { grad[probaIndex(pr.y, c)] = 0.0; }
    return;
  }
  let fgBit = isFg(pr, c);
  let upTo = f32(cum[id] + totals[id / params.block]);
  let fgTotal = f32(gts[c]);
  let jac = 1.0 - (fgTotal - upTo) / (fgTotal + f32(j + 1u) - upTo);
  let before = upTo - f32(fgBit);
  let jacPrev = select(1.0 - (fgTotal - before) / (fgTotal + f32(j) - before), 0.0, j == 0u);
  let g = jac - jacPrev;
  contrib[id] = bitcast<f32>(pr.x - 1u) * g;
  let p = probas[probaIndex(pr.y, c)];
  grad[probaIndex(pr.y, c)] = g * sign(p - f32(fgBit));`,
    }),
);

/**
 * Final combination in one invocation: present[c] = (classes 'all' or gts[c] > 0), n = sum present,
 * loss = sum_c present * lossPerClass / max(n, 1) (0 when no class counts, as SCHP's mean(empty=0)),
 * coef[c] = present / max(n, 1) (the backward's per-class factor).
 */
export const lovaszCombineKernel = cachedKernel(
  (allClasses: boolean): Kernel =>
    makeKernel({
      key: `lovasz.combine:${allClasses}`,
      buffers: [readOnly('perClass'), readOnly('gts', 'u32'), readWrite('loss'), readWrite('coef')],
      uniforms: [{ name: 'C', type: 'u32' }],
      workgroupSize: [1, 1, 1],
      body: /* wgsl */ `
@compute @workgroup_size(1)
fn main() {
  var n = 0.0;
  for (var c = 0u; c < params.C; c++) { n += ${allClasses ? '1.0' : 'select(0.0, 1.0, gts[c] > 0u)'}; }
  let inv = 1.0 / max(n, 1.0);
  var total = 0.0;
  for (var c = 0u; c < params.C; c++) {
    let w = ${allClasses ? '1.0' : 'select(0.0, 1.0, gts[c] > 0u)'} * inv;
    coef[c] = w;
    total += w * perClass[c];
  }
  loss[0] = total;
}`,
    }),
);

export const lovaszElementGrid = (n: number): Grid => grid1d(n, WG);
export const lovaszBlockGrid = (blocks: number): Grid => gridGroups(blocks);
export const lovaszClassGrid = (C: number): Grid => grid1d(C, WG);
