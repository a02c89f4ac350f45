import { NAN_WGSL } from './elementwise.js';
import {
  cachedKernel,
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

/**
 * Reductions over the middle axis of a [O, R, I] view of a contiguous tensor (any set of adjacent axes can be
 * viewed this way; the core permutes other axis sets first). Output is [O, I].
 *
 * - sum / mean (sum times `scale`): each thread's serial loop sums in blocks (blockedSum) and partials
 *   combine by a tree, so long rows keep float32 accuracy (a plain running sum of 20M x 0.01 drifts by 0.09%)
 * - max, min: start from -inf / +inf and propagate NaN (PyTorch's amax/amin)
 * - argmax / argmin: index along R as i32; ties resolve to the first index and NaN wins (the first NaN), as in PyTorch
 * - var: two blocked passes (mean, then squared deviations) divided by (R - correction)
 */
export type ReduceOp = 'sum' | 'max' | 'min' | 'argmax' | 'argmin' | 'var';

/**
 * 'row': one workgroup (of `lanes` invocations, see RowLanes) per output, its threads stride over R and combine in workgroup memory (I must be 1).
 * 'column': one thread per output, looping over R with stride I (coalesced across neighbouring outputs).
 * 'outer': the axes on both sides of the kept block, [R, O, I] -> [O] (sum, max, min): as 'row', a workgroup per
 *          output, its threads striding over each of the R runs of I values in turn; one dispatch where reducing
 *          the inner run and then the outer one takes two (a convolution's bias gradient).
 */
export type ReduceMode = 'row' | 'column' | 'outer';

const COL_WG = 256;

interface Combine {
  init: string;
  /** Folds value `v` at index `r` into the accumulator (acc, idx). */
  step: string;
  /** Folds another partial (acc2, idx2) into (acc, idx); index ties go to the smaller index. */
  merge: string;
}

/**
 * Blocked summation of value(r) for r = start, start + step, ... < R into `acc`: nested loops add 32 values
 * into p1, 32 p1 into p2, 32 p2 into p3, and each p3 into `acc`, so no addend is ever much smaller than its
 * running sum and the error grows with about n / 32768 + 96 additions instead of n. Full blocks of 32 run
 * a fixed-count loop the compiler can unroll, so there is no per-value branch. Kahan compensation does not survive here: lavapipe's optimiser
 * folds (t - s) - y to 0, and the plain sum came out bit for bit unchanged. Infinities and NaN add up as in
 * a plain loop.
 */
export function blockedSum(acc: string, start: string, step: number, value: string, bound = 'params.R'): string {
  const span = (k: number) => `${step * k}u`;
  return `for (var r3 = ${start}; r3 < ${bound}; r3 += ${span(32768)}) {
      var p3 = 0.0; let e3 = min(r3 + ${span(32768)}, ${bound});
      for (var r2 = r3; r2 < e3; r2 += ${span(1024)}) {
        var p2 = 0.0; let e2 = min(r2 + ${span(1024)}, e3);
        for (var r1 = r2; r1 < e2; r1 += ${span(32)}) {
          var p1 = 0.0;
          if (r1 + ${span(32)} <= e2) {
            for (var j = 0u; j < 32u; j++) { let r = r1 + j * ${step}u; p1 += ${value}; }
          } else {
            for (var r = r1; r < e2; r += ${step}u) { p1 += ${value}; }
          }
          p2 += p1;
        }
        p3 += p2;
      }
      ${acc} += p3;
    }`;
}

/** Whether partial (acc2, idx2) beats (acc, idx) for argmax ('>') or argmin ('<'): NaN first, ties to the smaller index. */
const argBetter = (cmp: '>' | '<') =>
  `(isnan_(acc2) && (!isnan_(acc) || idx2 < idx)) || (!isnan_(acc2) && !isnan_(acc) && (acc2 ${cmp} acc || (acc2 == acc && idx2 < idx)))`;

const NEG_INF = 'inf_(-1.0)';
const POS_INF = 'inf_(1.0)';

const COMBINE: Record<Exclude<ReduceOp, 'var'>, Combine> = {
  // The sum's serial loop is blockedSum; this step only documents the combine.
  sum: { init: '0.0', step: 'acc += v;', merge: 'acc += acc2;' },
  max: { init: NEG_INF, step: 'acc = max_(acc, v);', merge: 'acc = max_(acc, acc2);' },
  min: { init: POS_INF, step: 'acc = min_(acc, v);', merge: 'acc = min_(acc, acc2);' },
  // NaN ranks above every number for argmax and below every number for argmin, so both return the first NaN
  // (PyTorch); NaN is tested on the bits, since comparisons with NaN may be folded away.
  argmax: {
    init: '-3.402823e38',
    step: 'if (idx < 0 || (!isnan_(acc) && (v > acc || isnan_(v)))) { acc = v; idx = i32(r); }',
    merge: `if (idx2 >= 0 && (idx < 0 || ${argBetter('>')})) { acc = acc2; idx = idx2; }`,
  },
  argmin: {
    init: '3.402823e38',
    step: 'if (idx < 0 || (!isnan_(acc) && (v < acc || isnan_(v)))) { acc = v; idx = i32(r); }',
    merge: `if (idx2 >= 0 && (idx < 0 || ${argBetter('<')})) { acc = acc2; idx = idx2; }`,
  },
};

export const reduceKernel = cachedKernel((op: ReduceOp, mode: ReduceMode, lanes: RowLanes = 64): Kernel => {
  const isArg = op === 'argmax' || op === 'argmin';
  const outType = isArg ? 'i32' : 'f32';
  const uniforms = [
    { name: 'O', type: 'u32' as const },
    { name: 'R', type: 'u32' as const },
    { name: 'I', type: 'u32' as const },
    { name: 'scale', type: 'f32' as const },
  ];
  const buffers = [readOnly('x'), readWrite('out', outType)];
  const key = `reduce:${op}:${mode}${mode === 'column' ? '' : lanesKey(lanes)}`;
  const result = isArg ? 'idx' : op === 'sum' ? 'acc * params.scale' : 'acc';

  if (mode === 'column') {
    const c = op === 'var' ? COMBINE.sum : COMBINE[op];
    const loop = (stmt: string) => `for (var r = 0u; r < params.R; r++) { let v = x[base + r * params.I]; ${stmt} }`;
    const xr = 'x[base + r * params.I]';
    const body =
      op === 'var'
        ? `var mean = 0.0; ${blockedSum('mean', '0u', 1, xr)}
    mean = mean / f32(params.R);
    var acc = 0.0; ${blockedSum('acc', '0u', 1, `(${xr} - mean) * (${xr} - mean)`)}
    out[o] = acc * params.scale;`
        : `var acc: f32 = ${c.init}; var idx: i32 = -1; ${op === 'sum' ? blockedSum('acc', '0u', 1, xr) : loop(c.step)}
    out[o] = ${result};`;
    return flatKernel({
      key,
      buffers,
      uniforms,
      workgroupSize: COL_WG,
      index: 'o',
      bound: 'params.O * params.I',
      helpers: NAN_WGSL,
      body: /* wgsl */ `
  let base = (o / params.I) * params.R * params.I + o % params.I;
  ${body}`,
    });
  }

  // Row and outer mode: tree reduction in workgroup memory. `var` runs it twice (mean, then squared deviations).
  if (mode === 'outer' && (op === 'var' || isArg)) throw new Error(`reduce: ${op} has no 'outer' mode`);
  const c = op === 'var' ? COMBINE.sum : COMBINE[op];
  const xr = mode === 'outer' ? 'x[ab + r]' : 'x[base + r]';
  // This invocation's values r = lid, lid + lanes, ... < bound, read as valueExpr.
  const laneFold = (valueExpr: string, bound: string) =>
    c === COMBINE.sum
      ? blockedSum('acc', 'lid', lanes, valueExpr, bound)
      : `for (var r = lid; r < ${bound}; r += ${lanes}u) { let v = ${valueExpr}; ${c.step} }`;
  // 'outer': R = A runs of I values per output, run a at ab = (a * O + o) * I; sums take each run's part
  // separately (blocked), so precision is as in 'row' mode over I.
  const fold = (valueExpr: string) =>
    mode === 'outer'
      ? `for (var a = 0u; a < params.R; a++) {
      let ab = (a * params.O + o) * params.I;
      ${c === COMBINE.sum ? `var part = 0.0; ${blockedSum('part', 'lid', lanes, valueExpr, 'params.I')} acc += part;` : laneFold(valueExpr, 'params.I')}
    }`
      : laneFold(valueExpr, 'params.R');
  const treeReduce = (valueExpr: string, target: string) => `
  {
    var acc: f32 = ${c.init}; var idx: i32 = -1;
    ${fold(valueExpr)}
    s_acc[lid] = acc; s_idx[lid] = idx;
    workgroupBarrier();
    for (var stride = ${lanes / 2}u; stride > 0u; stride = stride / 2u) {
      if (lid < stride) {
        acc = s_acc[lid]; idx = s_idx[lid];
        let acc2 = s_acc[lid + stride]; let idx2 = s_idx[lid + stride];
        ${c.merge}
        s_acc[lid] = acc; s_idx[lid] = idx;
      }
      workgroupBarrier();
    }
    ${target}
  }`;
  const body =
    op === 'var'
      ? `${treeReduce(xr, 'mean = s_acc[0] / f32(params.R); workgroupBarrier();')}
  ${treeReduce(`(${xr} - mean) * (${xr} - mean)`, 'if (lid == 0u) { out[o] = s_acc[0] * params.scale; }')}`
      : treeReduce(xr, `if (lid == 0u) { acc = s_acc[0]; idx = s_idx[0]; out[o] = ${result}; }`);
  return flatKernel({
    key,
    buffers,
    uniforms,
    workgroupSize: lanes,
    per: 'workgroup',
    index: 'o',
    bound: 'params.O',
    helpers: /* wgsl */ `
${NAN_WGSL}
var<workgroup> s_acc: array<f32, ${lanes}>;
var<workgroup> s_idx: array<i32, ${lanes}>;`,
    body: /* wgsl */ `
  let base = o * params.R;
  var mean = 0.0;
  ${body}`,
  });
});

/**
 * Sum of x viewed as [A, O, I] over A and I, an invocation per output o: each run of I values is summed as the
 * column mode sums it (blockedSum), then the A run sums in order as a second column pass would, so the result
 * is bit for bit that of the two dispatches it replaces (a bias gradient over [N, C, H, W] with short H*W runs).
 */
export const nestedSumKernel = cachedKernel(
  (): Kernel =>
    flatKernel({
      key: 'reduce:sum:nested',
      buffers: [readOnly('x'), readWrite('out')],
      uniforms: [
        { name: 'A', type: 'u32' },
        { name: 'O', type: 'u32' },
        { name: 'I', type: 'u32' },
      ],
      workgroupSize: COL_WG,
      index: 'o',
      bound: 'params.O',
      helpers: /* wgsl */ `
fn runSum(start: u32) -> f32 {
  var p = 0.0;
  ${blockedSum('p', '0u', 1, 'x[start + r]', 'params.I')}
  return p;
}`,
      body: /* wgsl */ `
  var acc = 0.0;
  ${blockedSum('acc', '0u', 1, 'runSum((r * params.O + o) * params.I)', 'params.A')}
  out[o] = acc;`,
    }),
);

export const nestedSumGrid = (O: number): Grid => grid1d(O, COL_WG);

/** Row mode pays off once a row is long enough to share among a workgroup. */
export function chooseReduceMode(R: number, I: number): ReduceMode {
  return I === 1 && R >= 128 ? 'row' : 'column';
}

export function reduceGrid(mode: ReduceMode, O: number, I: number): Grid {
  return mode === 'column' ? grid1d(O * I, COL_WG) : gridGroups(O);
}
