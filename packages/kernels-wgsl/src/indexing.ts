import { MAX_RANK } from './elementwise.js';
import { cachedKernel, fields, flatKernel, type Grid, grid1d, type Kernel, readOnly, readWrite } from './kernel.js';

/**
 * Integer indexing: gather along an axis (torch.gather), index_select, their backward as a scatter-add, and
 * one-hot encoding. Indices are int32; an index outside [0, size) yields NaN in the output (PyTorch raises; a
 * kernel cannot) and is skipped by the scatter-add.
 *
 * The scatter-add accumulates with a compare-exchange loop on the float's bits (WGSL has integer atomics
 * only), so the summation order of duplicate indices is not deterministic.
 */
const WG = 256;

const NAN_WGSL = /* wgsl */ `
fn nan_() -> f32 { let bits = 0x7fc00000u; return bitcast<f32>(bits); }
`;

const ATOMIC_ADD_WGSL = /* wgsl */ `
fn atomicAddF32(i: u32, v: f32) {
  var old = atomicLoad(&gx[i]);
  loop {
    let r = atomicCompareExchangeWeak(&gx[i], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}
`;

const arr = { array: 'u32' as const, length: MAX_RANK };

/** Forward reads x at indexed offsets into out; backward adds g into gx there (float atomics on u32 words). */
const indexedBuffers = (backward: boolean) =>
  backward
    ? [readOnly('g'), readOnly('index', 'i32'), readWrite('gx', 'atomic<u32>')]
    : [readOnly('x'), readOnly('index', 'i32'), readWrite('out')];

/**
 * gather: for each position c of the index tensor (shape `ishape`), the x offset is
 * sum_{d != axis} c_d * xstride_d + index[c] * xstride_axis. Forward reads x there; backward adds g into gx.
 */
export const gatherAxisKernel = cachedKernel(
  (rank: number, backward: boolean): Kernel =>
    flatKernel({
      key: `gather.axis:${rank}:${backward}`,
      buffers: indexedBuffers(backward),
      uniforms: [...fields('u32', 'n', 'axis', 'axisSize'), ...fields(arr, 'ishape', 'xstride')],
      workgroupSize: WG,
      helpers: /* wgsl */ `
${backward ? ATOMIC_ADD_WGSL : NAN_WGSL}`,
      body: /* wgsl */ `
  var rem = i;
  var off = 0u;
  for (var d = ${rank - 1}; d >= 0; d--) {
    let s = params.ishape[d / 4][d % 4];
    let c = rem % s;
    rem = rem / s;
    if (u32(d) != params.axis) { off += c * params.xstride[d / 4][d % 4]; }
  }
  let k = index[i];
  let inside = k >= 0 && u32(k) < params.axisSize;
  let at = off + u32(k) * params.xstride[params.axis / 4u][params.axis % 4u];
  ${backward ? 'if (inside) { atomicAddF32(at, g[i]); }' : 'out[i] = select(nan_(), x[select(0u, at, inside)], inside);'}`,
    }),
);

/** index_select on x viewed as [O, A, I] with index [K]: out[o, k, i] = x[o, index[k], i] (backward adds). */
export const indexSelectKernel = cachedKernel(
  (backward: boolean): Kernel =>
    flatKernel({
      key: `index_select:${backward}`,
      buffers: indexedBuffers(backward),
      uniforms: fields('u32', 'n', 'A', 'K', 'I'),
      workgroupSize: WG,
      helpers: /* wgsl */ `
${backward ? ATOMIC_ADD_WGSL : NAN_WGSL}`,
      body: /* wgsl */ `
  let inner = i % params.I;
  let kk = (i / params.I) % params.K;
  let o = i / (params.I * params.K);
  let k = index[kk];
  let inside = k >= 0 && u32(k) < params.A;
  let at = (o * params.A + u32(k)) * params.I + inner;
  ${backward ? 'if (inside) { atomicAddF32(at, g[i]); }' : 'out[i] = select(nan_(), x[select(0u, at, inside)], inside);'}`,
    }),
);

/** out[i * K + k] = 1 where labels[i] == k, else 0; a label outside [0, K) makes its row NaN. */
export const oneHotKernel = cachedKernel(
  (): Kernel =>
    flatKernel({
      key: 'one_hot',
      buffers: [readOnly('labels', 'i32'), readWrite('out')],
      uniforms: fields('u32', 'n', 'K'),
      workgroupSize: WG,
      helpers: NAN_WGSL,
      body: /* wgsl */ `
  let lab = labels[i / params.K];
  let hit = select(0.0, 1.0, lab == i32(i % params.K));
  out[i] = select(nan_(), hit, lab >= 0 && u32(lab) < params.K);`,
    }),
);

export const indexingGrid = (n: number): Grid => grid1d(n, WG);

/**
 * Device-side index validation: the first index outside [lo, hi) (other than `ignore` when `useIgnore` is 1)
 * claims flag[0] with this check's id and stores its value in flag[1]; the host reports it at the next readback.
 * Nothing is written when every index is in range, so a clean check costs one read of the indices.
 */
export const indexRangeCheckKernel = cachedKernel(
  (): Kernel =>
    flatKernel({
      key: 'index_range_check',
      buffers: [readOnly('idx', 'i32'), readWrite('flag', 'atomic<u32>')],
      uniforms: [
        { name: 'n', type: 'u32' },
        ...fields('i32', 'lo', 'hi', 'ignore'),
        ...fields('u32', 'useIgnore', 'checkId'),
      ],
      workgroupSize: WG,
      body: /* wgsl */ `
  let v = idx[i];
  let ignored = params.useIgnore == 1u && v == params.ignore;
  if (ignored || (v >= params.lo && v < params.hi)) { return; }
  // A weak exchange may fail spuriously: retry until this thread or another has claimed the flag.
  loop {
    let r = atomicCompareExchangeWeak(&flag[0], 0u, params.checkId);
    if (r.exchanged) { atomicStore(&flag[1], bitcast<u32>(v)); break; }
    if (r.old_value != 0u) { break; }
  }`,
    }),
);
