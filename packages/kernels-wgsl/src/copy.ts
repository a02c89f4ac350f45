import { cachedKernel, FLAT_INDEX_WGSL, type Kernel, grid1d, makeKernel } from './kernel.js';
import { MAX_RANK } from './elementwise.js';

const WG = 256;
const arr = (type: 'u32' | 'i32') => ({ array: type, length: MAX_RANK });

/**
 * Strided gather: out[i] = src[offset + sum_d (c_d - lo_d) * stride_d] for the output coordinate c, or `fill`
 * where c_d - lo_d falls outside [0, srcShape_d). One kernel serves permute (permuted strides), expand
 * (stride 0), slice with step (offset + scaled strides), flip (negative strides) and constant pad (lo > 0).
 * Copies raw 32-bit words, so it is dtype-agnostic for 4-byte types.
 */
export const gatherKernel = cachedKernel((rank: number, padded: boolean): Kernel => {
  return makeKernel({
    key: `gather:${rank}:${padded}`,
    buffers: [
      { name: 'src', access: 'read', type: 'u32' },
      { name: 'out', access: 'read_write', type: 'u32' },
    ],
    uniforms: [
      { name: 'n', type: 'u32' },
      { name: 'offset', type: 'i32' },
      { name: 'fill', type: 'u32' },
      { name: 'shape', type: arr('u32') },
      { name: 'stride', type: arr('i32') },
      { name: 'lo', type: arr('i32') },
      { name: 'srcShape', type: arr('i32') },
    ],
    workgroupSize: [WG, 1, 1],
    body: /* wgsl */ `
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatGroup(wid, nwg) * ${WG}u + lid;
  if (i >= params.n) { return; }
  var rem = i;
  var src_i = params.offset;
  var inside = true;
  for (var d = ${rank - 1}; d >= 0; d--) {
    let s = params.shape[d / 4][d % 4];
    let c = i32(rem % s) - ${padded ? 'params.lo[d / 4][d % 4]' : '0'};
    rem = rem / s;
    ${padded ? 'inside = inside && c >= 0 && c < params.srcShape[d / 4][d % 4];' : ''}
    src_i += c * params.stride[d / 4][d % 4];
  }
  ${padded ? 'if (!inside) { out[i] = params.fill; return; }' : ''}
  out[i] = src[u32(src_i)];
}`,
  });
});

/**
 * Strided scatter: out[offset + sum_d c_d * stride_d] = src[i] for each coordinate c of the (contiguous) source.
 * Writes one slab of a larger tensor, as concat does for each of its inputs.
 */
export const scatterKernel = cachedKernel((rank: number): Kernel => {
  return makeKernel({
    key: `scatter:${rank}`,
    buffers: [
      { name: 'src', access: 'read', type: 'u32' },
      { name: 'out', access: 'read_write', type: 'u32' },
    ],
    uniforms: [
      { name: 'n', type: 'u32' },
      { name: 'offset', type: 'u32' },
      { name: 'shape', type: arr('u32') },
      { name: 'stride', type: arr('u32') },
    ],
    workgroupSize: [WG, 1, 1],
    body: /* wgsl */ `
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatGroup(wid, nwg) * ${WG}u + lid;
  if (i >= params.n) { return; }
  var rem = i;
  var dst = params.offset;
  for (var d = ${rank - 1}; d >= 0; d--) {
    let s = params.shape[d / 4][d % 4];
    dst += (rem % s) * params.stride[d / 4][d % 4];
    rem = rem / s;
  }
  out[dst] = src[i];
}`,
  });
});

/** Fills a buffer with one 32-bit word. */
export const fillKernel = cachedKernel((): Kernel => {
  return makeKernel({
    key: 'fill',
    buffers: [{ name: 'out', access: 'read_write', type: 'u32' }],
    uniforms: [
      { name: 'n', type: 'u32' },
      { name: 'value', type: 'u32' },
    ],
    workgroupSize: [WG, 1, 1],
    body: /* wgsl */ `
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatGroup(wid, nwg) * ${WG}u + lid;
  if (i >= params.n) { return; }
  out[i] = params.value;
}`,
  });
});

export const copyGrid = (n: number) => grid1d(n, WG);

/** Converts between float32 and int32 (float to int truncates toward zero, as PyTorch's .int()). */
export const castKernel = cachedKernel((to: 'float32' | 'int32'): Kernel =>
  makeKernel({
    key: `cast:${to}`,
    buffers: [
      { name: 'src', access: 'read', type: to === 'float32' ? 'i32' : 'f32' },
      { name: 'out', access: 'read_write', type: to === 'float32' ? 'f32' : 'i32' },
    ],
    uniforms: [{ name: 'n', type: 'u32' }],
    workgroupSize: [WG, 1, 1],
    body: /* wgsl */ `
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatGroup(wid, nwg) * ${WG}u + lid;
  if (i >= params.n) { return; }
  out[i] = ${to === 'float32' ? 'f32' : 'i32'}(src[i]);
}`,
  }),
);
