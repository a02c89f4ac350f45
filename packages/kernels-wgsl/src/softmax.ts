import { cachedKernel, flatKernel, type Grid, grid1d, gridGroups, type Kernel, readOnly, readWrite } from './kernel.js';

/**
 * Softmax and log-softmax over the last axis of a [rows, cols] tensor, forward and backward.
 * forward:  y = exp(x - max) / sum(exp(x - max))        (log: y = x - max - log(sum))
 * backward: gx = y * (g - sum(g * y))                     (log: gx = g - exp(y) * sum(g))
 * 'row' mode gives each row a workgroup (long rows), `subgroup` one 8-lane workgroup that reduces with subgroup
 * operations instead of barriers (on CPU adapters a barrier is a switch through every lane group, tens of
 * microseconds; needs subgroups of at least 8, so the workgroup is one subgroup);
 * 'thread' mode gives each row one invocation (short rows),
 * and also reads rows whose elements are `inner` apart: softmax over a middle axis ([outer, cols, inner], e.g. the
 * classes of NCHW logits) in place, neighbouring invocations reading neighbouring addresses, with no transposes.
 */
export type SoftmaxKind = 'softmax' | 'logsoftmax';
export type RowMode = 'row' | 'thread';

const ROW_WG = 64;
const SUBGROUP_WG = 8;
const THREAD_WG = 64;

function rowBody(
  kind: SoftmaxKind,
  backward: boolean,
): { passes: { init: string; acc: string; combine: string }[]; write: string } {
  if (!backward) {
    return {
      passes: [
        { init: '-3.402823e38', acc: 'max(acc, x[base + c])', combine: 'max' },
        { init: '0.0', acc: 'acc + exp(x[base + c] - r0)', combine: '+' },
      ],
      write:
        kind === 'softmax'
          ? 'out[base + c] = exp(x[base + c] - r0) / r1;'
          : 'out[base + c] = x[base + c] - r0 - log(r1);',
    };
  }
  // x holds y (the forward output), g the incoming gradient.
  return {
    passes: [
      { init: '0.0', acc: kind === 'softmax' ? 'acc + g[base + c] * x[base + c]' : 'acc + g[base + c]', combine: '+' },
    ],
    write:
      kind === 'softmax'
        ? 'out[base + c] = x[base + c] * (g[base + c] - r0);'
        : 'out[base + c] = g[base + c] - exp(x[base + c]) * r0;',
  };
}

/**
 * The same passes over vec4s (row mode, columns a multiple of 4): a quarter of the loads, which is what a
 * streaming kernel costs on CPU adapters (every per-invocation load is a loop over the SIMD lanes).
 */
function rowBodyVec(
  kind: SoftmaxKind,
  backward: boolean,
): { passes: { init: string; acc: string; combine: string }[]; write: string } {
  const x = 'x[base + c]';
  const g = 'g[base + c]';
  if (!backward) {
    return {
      passes: [
        { init: '-3.402823e38', acc: `max(acc, max(max(${x}.x, ${x}.y), max(${x}.z, ${x}.w)))`, combine: 'max' },
        { init: '0.0', acc: `acc + dot(exp(${x} - r0), vec4<f32>(1.0))`, combine: '+' },
      ],
      write: kind === 'softmax' ? `out[base + c] = exp(${x} - r0) / r1;` : `out[base + c] = ${x} - r0 - log(r1);`,
    };
  }
  return {
    passes: [
      {
        init: '0.0',
        acc: kind === 'softmax' ? `acc + dot(${g}, ${x})` : `acc + dot(${g}, vec4<f32>(1.0))`,
        combine: '+',
      },
    ],
    write: kind === 'softmax' ? `out[base + c] = ${x} * (${g} - r0);` : `out[base + c] = ${g} - exp(${x}) * r0;`,
  };
}

export const softmaxKernel = cachedKernel(
  (kind: SoftmaxKind, backward: boolean, mode: RowMode, vec = false, subgroup = false): Kernel => {
    if ((vec || subgroup) && mode !== 'row')
      throw new Error('softmaxKernel: the vec4 and subgroup variants are for row mode');
    const { passes, write } = vec ? rowBodyVec(kind, backward) : rowBody(kind, backward);
    const t = vec ? 'vec4<f32>' : 'f32';
    const buffers = [readOnly('x', t), ...(backward ? [readOnly('g', t)] : []), readWrite('out', t)];
    const uniforms = [
      { name: 'rows', type: 'u32' as const },
      { name: 'cols', type: 'u32' as const },
      ...(mode === 'thread' ? [{ name: 'inner', type: 'u32' as const }] : []),
    ];
    const key = `softmax:${kind}:${backward}:${mode}:${vec}${subgroup ? ':subgroup' : ''}`;
    const merge = (p: { combine: string }, a: string, b: string) =>
      p.combine === '+' ? `${a} + ${b}` : `${p.combine}(${a}, ${b})`;
    if (mode === 'thread') {
      const strided = (code: string) => code.replaceAll('[base + c]', '[base + c * params.inner]');
      const body = passes
        .map(
          (p, i) =>
            `var r${i} = ${p.init}; { var acc = r${i}; for (var c = 0u; c < params.cols; c++) { acc = ${strided(p.acc)}; } r${i} = acc; }`,
        )
        .join('\n  ');
      return flatKernel({
        key,
        buffers,
        uniforms,
        workgroupSize: THREAD_WG,
        index: 'row',
        bound: 'params.rows',
        body: /* wgsl */ `
  let i = row % params.inner;
  let base = (row - i) * params.cols + i;
  ${body}
  for (var c = 0u; c < params.cols; c++) { ${strided(write)} }`,
      });
    }
    const wg = subgroup ? SUBGROUP_WG : ROW_WG;
    const reduce = (p: { combine: string }) => (p.combine === '+' ? 'subgroupAdd' : 'subgroupMax');
    const body = passes
      .map((p, i) =>
        subgroup
          ? `
  var r${i}: f32;
  {
    var acc: f32 = ${p.init};
    for (var c = lid; c < cols; c += ${wg}u) { acc = ${p.acc}; }
    r${i} = ${reduce(p)}(acc);
  }`
          : `
  var r${i}: f32;
  {
    var acc: f32 = ${p.init};
    for (var c = lid; c < cols; c += ${ROW_WG}u) { acc = ${p.acc}; }
    scratch[lid] = acc;
    workgroupBarrier();
    for (var s = ${ROW_WG / 2}u; s > 0u; s = s / 2u) {
      if (lid < s) { scratch[lid] = ${merge(p, 'scratch[lid]', 'scratch[lid + s]')}; }
      workgroupBarrier();
    }
    r${i} = scratch[0];
    workgroupBarrier();
  }`,
      )
      .join('');
    return flatKernel({
      key,
      buffers,
      uniforms,
      workgroupSize: wg,
      per: 'workgroup',
      index: 'row',
      bound: 'params.rows',
      helpers: subgroup
        ? ''
        : /* wgsl */ `
var<workgroup> scratch: array<f32, ${ROW_WG}>;`,
      body: /* wgsl */ `
  let cols = ${vec ? 'params.cols / 4u' : 'params.cols'};
  let base = row * cols;
  ${body}
  for (var c = lid; c < cols; c += ${wg}u) { ${write} }`,
    });
  },
);

export const chooseRowMode = (cols: number): RowMode => (cols >= 64 ? 'row' : 'thread');

export function softmaxGrid(mode: RowMode, rows: number): Grid {
  return mode === 'row' ? gridGroups(rows) : grid1d(rows, THREAD_WG);
}
