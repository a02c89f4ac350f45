import { cachedKernel, fields, flatKernel, grid1d, type Kernel, readOnly, readWrite } from './kernel.js';
import { MAX_RANK } from './elementwise.js';

const WG = 256;
const arr = (type: 'u32' | 'i32') => ({ array: type, length: MAX_RANK });

/** Innermost values one invocation of a `runs` gather copies. */
export const GATHER_RUN = 4;

/**
 * Strided gather: out[i] = src[offset + sum_d (c_d - lo_d) * stride_d] for the output coordinate c, or `fill`
 * where c_d - lo_d falls outside [0, srcShape_d). One kernel serves permute (permuted strides), expand
 * (stride 0), slice with step (offset + scaled strides), flip (negative strides) and constant pad (lo > 0).
 * Copies raw 32-bit words, so it is dtype-agnostic for 4-byte types. On CPU adapters a copy costs its index
 * arithmetic and per-invocation work, not its bytes, so two forms share them over several values:
 *
 * - `vec`: the words move four at a time (vec4 units: the caller divides the innermost size, the offset and the
 *   strides by 4), a quarter of the index arithmetic and scalar loads per value;
 * - `runs` (rank >= 2, where vec4 units do not fit: a padded row, an odd innermost size): an invocation copies
 *   GATHER_RUN consecutive values of one innermost row (n counts runs, runsW of them per row), decomposing the
 *   row's coordinate once.
 *
 * At rank 1 the flat index is the coordinate (shape[0] = n), so no division is emitted.
 */
export const gatherKernel = cachedKernel((rank: number, padded: boolean, vec = false, runs = false): Kernel => {
  if (padded && vec) throw new Error('gatherKernel: the padded gather has no vec4 form');
  if (runs && (vec || rank < 2)) throw new Error('gatherKernel: runs need rank >= 2 and scalar words');
  const t = vec ? 'vec4<u32>' : 'u32';
  const last = rank - 1;
  const at = (name: string, d: number | string) =>
    typeof d === 'number' ? `params.${name}[${d >> 2}][${d & 3}]` : `params.${name}[${d} / 4][${d} % 4]`;
  // Coordinates of dims `from` down to 0 of flat index `flat` into src_i / inside.
  const decompose = (flat: string, from: number) => `var rem = ${flat};
  var src_i = params.offset;
  var inside = true;
  for (var d = ${from}; d >= 0; d--) {
    let s = ${at('shape', 'd')};
    let c = i32(${rank === 1 ? 'rem' : 'rem % s'}) - ${padded ? at('lo', 'd') : '0'};
    rem = rem / s;
    ${padded ? `inside = inside && c >= 0 && c < ${at('srcShape', 'd')};` : ''}
    src_i += c * ${at('stride', 'd')};
  }`;
  const body = runs
    ? /* wgsl */ `
  let row = i / params.runsW;
  let x0 = (i - row * params.runsW) * ${GATHER_RUN}u;
  ${decompose('row', last - 1)}
  let W = ${at('shape', last)};
  for (var k = 0u; k < ${GATHER_RUN}u; k++) {
    let x = x0 + k;
    if (x >= W) { break; }
    let c = i32(x) - ${padded ? at('lo', last) : '0'};
    ${
      padded
        ? `if (inside && c >= 0 && c < ${at('srcShape', last)}) { out[row * W + x] = src[u32(src_i + c * ${at('stride', last)})]; } else { out[row * W + x] = params.fill; }`
        : `out[row * W + x] = src[u32(src_i + c * ${at('stride', last)})];`
    }
  }`
    : /* wgsl */ `
  ${decompose('i', last)}
  ${padded ? 'if (!inside) { out[i] = params.fill; return; }' : ''}
  out[i] = src[u32(src_i)];`;
  return flatKernel({
    key: `gather:${rank}:${padded}${vec ? ':vec4' : ''}${runs ? ':runs' : ''}`,
    buffers: [readOnly('src', t), readWrite('out', t)],
    uniforms: [
      { name: 'n', type: 'u32' },
      { name: 'offset', type: 'i32' },
      { name: 'fill', type: 'u32' },
      ...(runs ? [{ name: 'runsW', type: 'u32' as const }] : []),
      { name: 'shape', type: arr('u32') },
      ...fields(arr('i32'), 'stride', 'lo', 'srcShape'),
    ],
    workgroupSize: WG,
    body,
  });
});

/**
 * Strided scatter: out[offset + sum_d c_d * stride_d] = src[i] for each coordinate c of the (contiguous) source.
 * Writes one slab of a larger tensor, as concat does for each of its inputs. `vec`: as gatherKernel's.
 */
export const scatterKernel = cachedKernel((rank: number, vec = false): Kernel => {
  const t = vec ? 'vec4<u32>' : 'u32';
  return flatKernel({
    key: `scatter:${rank}${vec ? ':vec4' : ''}`,
    buffers: [readOnly('src', t), readWrite('out', t)],
    uniforms: [...fields('u32', 'n', 'offset'), ...fields(arr('u32'), 'shape', 'stride')],
    workgroupSize: WG,
    body: /* wgsl */ `
  var rem = i;
  var dst = params.offset;
  for (var d = ${rank - 1}; d >= 0; d--) {
    let s = params.shape[d / 4][d % 4];
    dst += (${rank === 1 ? 'rem' : 'rem % s'}) * params.stride[d / 4][d % 4];
    rem = rem / s;
  }
  out[dst] = src[i];`,
  });
});

/** Fills a buffer with one 32-bit word. */
export const fillKernel = cachedKernel((): Kernel => {
  return flatKernel({
    key: 'fill',
    buffers: [readWrite('out', 'u32')],
    uniforms: fields('u32', 'n', 'value'),
    workgroupSize: WG,
    body: /* wgsl */ `
  out[i] = params.value;`,
  });
});

export const copyGrid = (n: number) => grid1d(n, WG);

/** Converts between float32 and int32 (float to int truncates toward zero, as PyTorch's .int()). */
export const castKernel = cachedKernel(
  (to: 'float32' | 'int32'): Kernel =>
    flatKernel({
      key: `cast:${to}`,
      buffers: [readOnly('src', to === 'float32' ? 'i32' : 'f32'), readWrite('out', to === 'float32' ? 'f32' : 'i32')],
      uniforms: [{ name: 'n', type: 'u32' }],
      workgroupSize: WG,
      body: /* wgsl */ `
  out[i] = ${to === 'float32' ? 'f32' : 'i32'}(src[i]);`,
    }),
);
