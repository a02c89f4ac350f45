import { cachedKernel, fields, flatKernel, grid1d, type Kernel, readOnly, readWrite } from './kernel.js';
import { MAX_RANK } from './elementwise.js';

const WG = 256;
const arr = (type: 'u32' | 'i32') => ({ array: type, length: MAX_RANK });

/**
 * Strided gather: out[i] = src[offset + sum_d (c_d - lo_d) * stride_d] for the output coordinate c, or `fill`
 * where c_d - lo_d falls outside [0, srcShape_d). One kernel serves permute (permuted strides), expand
 * (stride 0), slice with step (offset + scaled strides), flip (negative strides) and constant pad (lo > 0).
 * Copies raw 32-bit words, so it is dtype-agnostic for 4-byte types. `vec`: the words move four at a time
 * (vec4 units: the caller divides the innermost size, the offset and the strides by 4), a quarter of the
 * index arithmetic and scalar loads per value, which is what a copy costs on CPU adapters. At rank 1 the
 * flat index is the coordinate (shape[0] = n), so no division is emitted.
 */
export const gatherKernel = cachedKernel((rank: number, padded: boolean, vec = false): Kernel => {
  if (padded && vec) throw new Error('gatherKernel: the padded gather has no vec4 form');
  const t = vec ? 'vec4<u32>' : 'u32';
  return flatKernel({
    key: `gather:${rank}:${padded}${vec ? ':vec4' : ''}`,
    buffers: [readOnly('src', t), readWrite('out', t)],
    uniforms: [
      { name: 'n', type: 'u32' },
      { name: 'offset', type: 'i32' },
      { name: 'fill', type: 'u32' },
      { name: 'shape', type: arr('u32') },
      ...fields(arr('i32'), 'stride', 'lo', 'srcShape'),
    ],
    workgroupSize: WG,
    body: /* wgsl */ `
  var rem = i;
  var src_i = params.offset;
  var inside = true;
  for (var d = ${rank - 1}; d >= 0; d--) {
    let s = params.shape[d / 4][d % 4];
    let c = i32(${rank === 1 ? 'rem' : 'rem % s'}) - ${padded ? 'params.lo[d / 4][d % 4]' : '0'};
    rem = rem / s;
    ${padded ? 'inside = inside && c >= 0 && c < params.srcShape[d / 4][d % 4];' : ''}
    src_i += c * params.stride[d / 4][d % 4];
  }
  ${padded ? 'if (!inside) { out[i] = params.fill; return; }' : ''}
  out[i] = src[u32(src_i)];`,
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
