import { cachedKernel, flatKernel, type Grid, grid1d, gridGroups, type Kernel } from './kernel.js';
import type { WgslScalar } from './integer.js';

/*
 * Prefix scans (cumsum, and the exclusive products of prod's gradient) along the middle axis of x viewed as
 * [O, N, I]: each of the O * I lines is scanned independently, forwards or from the end, inclusive or
 * exclusive. Short lines get one invocation each; long lines one workgroup each, whose invocations scan
 * consecutive chunks, combine the chunk totals in workgroup memory and rescan their chunk with its offset.
 */

export type ScanOp = 'sum' | 'prod';

export interface ScanSpec {
  op: ScanOp;
  type: WgslScalar;
  /** Output k holds the fold of the elements before k (identity first) instead of up to and including k. */
  exclusive: boolean;
  /** Scan from the end of each line. */
  reverse: boolean;
  /** 'line': one invocation per line; 'workgroup': one workgroup of SCAN_WG invocations per line. */
  mode: 'line' | 'workgroup';
}

const LINE_WG = 64;
export const SCAN_WG = 64;
/** Lines at least this long are scanned by a whole workgroup. */
export const SCAN_WORKGROUP_MIN = 256;

export const chooseScanMode = (N: number): ScanSpec['mode'] => (N >= SCAN_WORKGROUP_MIN ? 'workgroup' : 'line');

export const scanKernel = cachedKernel((spec: ScanSpec): Kernel => {
  const { op, type, exclusive, reverse, mode } = spec;
  const zero = op === 'sum' ? (type === 'i32' ? '0' : '0.0') : type === 'i32' ? '1' : '1.0';
  const combine = (a: string, b: string) => (op === 'sum' ? `${a} + ${b}` : `${a} * ${b}`);
  const pos = (k: string) => (reverse ? `(params.N - 1u - ${k})` : k);
  const emit = exclusive
    ? `    out[at] = run;\n    run = ${combine('run', 'v')};`
    : `    run = ${combine('run', 'v')};\n    out[at] = run;`;
  const scanRange = (lo: string, hi: string) => `
  for (var k = ${lo}; k < ${hi}; k++) {
    let at = base + ${pos('k')} * params.I;
    let v = x[at];
${emit}
  }`;
  const buffers = [
    { name: 'x', access: 'read' as const, type },
    { name: 'out', access: 'read_write' as const, type },
  ];
  const uniforms = [
    { name: 'lines', type: 'u32' as const },
    { name: 'N', type: 'u32' as const },
    { name: 'I', type: 'u32' as const },
  ];
  const key = `scan:${op}:${type}:${exclusive}:${reverse}:${mode}`;
  if (mode === 'line') {
    return flatKernel({
      key,
      buffers,
      uniforms,
      workgroupSize: LINE_WG,
      index: 'line',
      bound: 'params.lines',
      body: /* wgsl */ `
  let base = (line / params.I) * params.N * params.I + line % params.I;
  var run: ${type} = ${zero};${scanRange('0u', 'params.N')}`,
    });
  }
  return flatKernel({
    key,
    buffers,
    uniforms,
    workgroupSize: SCAN_WG,
    per: 'workgroup',
    index: 'line',
    bound: 'params.lines',
    helpers: /* wgsl */ `
var<workgroup> part: array<${type}, ${SCAN_WG}>;`,
    body: /* wgsl */ `
  let base = (line / params.I) * params.N * params.I + line % params.I;
  let chunk = (params.N + ${SCAN_WG - 1}u) / ${SCAN_WG}u;
  let lo = min(lid * chunk, params.N);
  let hi = min(lo + chunk, params.N);
  var total: ${type} = ${zero};
  for (var k = lo; k < hi; k++) { total = ${combine('total', `x[base + ${pos('k')} * params.I]`)}; }
  part[lid] = total;
  workgroupBarrier();
  // Hillis-Steele inclusive scan of the chunk totals.
  for (var off = 1u; off < ${SCAN_WG}u; off = off * 2u) {
    let other = select(${zero}, part[select(0u, lid - off, lid >= off)], lid >= off);
    workgroupBarrier();
    part[lid] = ${combine('other', 'part[lid]')};
    workgroupBarrier();
  }
  var run: ${type} = select(${zero}, part[select(0u, lid - 1u, lid > 0u)], lid > 0u);${scanRange('lo', 'hi')}`,
  });
});

export const scanGrid = (mode: ScanSpec['mode'], lines: number): Grid =>
  mode === 'line' ? grid1d(lines, LINE_WG) : gridGroups(lines);
