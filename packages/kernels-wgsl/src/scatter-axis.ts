import { MAX_RANK } from './elementwise.js';
import { cachedKernel, fields, flatKernel, type Grid, grid1d, type Kernel, readOnly, readWrite } from './kernel.js';

const WG = 256;
const arr = { array: 'u32' as const, length: MAX_RANK };

/**
 * torch.scatter along an axis: for each position c of the index tensor (shape `ishape`), writes src[c] (or the
 * uniform `value` when `fromValue`) to out at sum_{d != axis} c_d * ostride_d + index[c] * ostride_axis. Copies
 * raw 32-bit words (any 4-byte dtype). Indices outside [0, axisSize) are skipped (the op checks them on the
 * device first); duplicate indices leave one of the written values, unspecified which, as in PyTorch.
 */
export const scatterAxisKernel = cachedKernel(
  (rank: number, fromValue: boolean): Kernel =>
    flatKernel({
      key: `scatter.axis:${rank}:${fromValue}`,
      buffers: [...(fromValue ? [] : [readOnly('src', 'u32')]), readOnly('index', 'i32'), readWrite('out', 'u32')],
      uniforms: [...fields('u32', 'n', 'axis', 'axisSize', 'value'), ...fields(arr, 'ishape', 'ostride')],
      workgroupSize: WG,
      body: /* wgsl */ `
  var rem = i;
  var off = 0u;
  for (var d = ${rank - 1}; d >= 0; d--) {
    let s = params.ishape[d / 4][d % 4];
    let c = rem % s;
    rem = rem / s;
    if (u32(d) != params.axis) { off += c * params.ostride[d / 4][d % 4]; }
  }
  let k = index[i];
  if (k < 0 || u32(k) >= params.axisSize) { return; }
  out[off + u32(k) * params.ostride[params.axis / 4u][params.axis % 4u]] = ${fromValue ? 'params.value' : 'src[i]'};`,
    }),
);

export const scatterAxisGrid = (n: number): Grid => grid1d(n, WG);
