import { type ConvGeometry, type ConvProduct, type ConvVariant, convGrid, convKernel } from '@leffa-webgpu/kernels-wgsl';
import { type Device, activeDevice } from '../device/device.js';
import { defineOp } from '../autograd/op.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { emptyTensor, launch } from './launch.js';
import { map } from './elementwise.js';
import { gemm } from './matmul.js';
import { sum } from './reduce.js';
import { pad, reshape } from './shape.js';

type Pair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  /** Zero padding per side, or 'same' (stride 1 only) / 'valid'. */
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
}

export interface ConvTranspose2dOptions {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  dilation?: Pair;
  groups?: number;
}

const pair = (v: Pair | undefined, d: number): [number, number] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : [v[0], v[1]]);

/** Everything the kernels need about one convolution, validated. */
interface ConvPlan extends ConvGeometry {
  n: number;
  cin: number;
  cout: number;
  groups: number;
  H: number;
  W: number;
  Ho: number;
  Wo: number;
}

function checkPositive(op: string, what: string, v: [number, number], min: number): void {
  if (v.some((x) => !Number.isInteger(x) || x < min)) throw new Error(`${op}: ${what} must be integers >= ${min}, got [${v.join(', ')}]`);
}

function planConv2d(x: Tensor, weight: Tensor, bias: Tensor | undefined, o: Conv2dOptions): ConvPlan {
  const op = 'conv2d';
  if (x.rank !== 4) throw new Error(`${op}: input must be [N, C, H, W], got ${formatShape(x.shape)}`);
  if (weight.rank !== 4) throw new Error(`${op}: weight must be [out, in / groups, kh, kw], got ${formatShape(weight.shape)}`);
  if (x.dtype !== 'float32' || weight.dtype !== 'float32') throw new Error(`${op}: expected float32 tensors`);
  const groups = o.groups ?? 1;
  const [n, cin, H, W] = x.shape as [number, number, number, number];
  const [cout, cinG, kh, kw] = weight.shape as [number, number, number, number];
  if (!Number.isInteger(groups) || groups < 1 || cin % groups !== 0 || cout % groups !== 0) {
    throw new Error(`${op}: groups ${groups} must divide input channels ${cin} and output channels ${cout}`);
  }
  if (cinG * groups !== cin) {
    throw new Error(`${op}: input ${formatShape(x.shape)} has ${cin} channels, weight ${formatShape(weight.shape)} expects ${cinG} x groups ${groups}`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== cout)) {
    throw new Error(`${op}: bias ${formatShape(bias.shape)} does not match ${cout} output channels`);
  }
  const [strideH, strideW] = pair(o.stride, 1);
  const [dilationH, dilationW] = pair(o.dilation, 1);
  checkPositive(op, 'stride', [strideH, strideW], 1);
  checkPositive(op, 'dilation', [dilationH, dilationW], 1);
  if (typeof o.padding === 'string') throw new Error(`${op}: padding '${o.padding}' must be resolved before planning`);
  const [padH, padW] = pair(o.padding, 0);
  checkPositive(op, 'padding', [padH, padW], 0);
  const Ho = Math.floor((H + 2 * padH - dilationH * (kh - 1) - 1) / strideH) + 1;
  const Wo = Math.floor((W + 2 * padW - dilationW * (kw - 1) - 1) / strideW) + 1;
  if (Ho < 1 || Wo < 1) {
    throw new Error(`${op}: kernel ${kh}x${kw} (dilation ${dilationH}x${dilationW}) does not fit input ${H}x${W} with padding ${padH}x${padW}`);
  }
  return { n, cin, cout, groups, H, W, Ho, Wo, kh, kw, strideH, strideW, padH, padW, dilationH, dilationW };
}

const geometry = (p: ConvPlan): ConvGeometry => ({
  kh: p.kh,
  kw: p.kw,
  strideH: p.strideH,
  strideW: p.strideW,
  padH: p.padH,
  padW: p.padW,
  dilationH: p.dilationH,
  dilationW: p.dilationW,
});

/** The subgroup-broadcast kernel on CPU adapters with 8-wide subgroups (as for matmul), registers elsewhere. */
function convVariantFor(device: Device): ConvVariant {
  const minSubgroup = (device.gpu as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo?.subgroupMinSize ?? 0;
  return device.report.isCpu && device.hasSubgroups && minSubgroup >= 8 ? 'broadcast' : 'register';
}

/**
 * Launches one implicit-GEMM product (see kernels-wgsl conv.ts for what A, B, M, N, K mean in each).
 * Long reductions over few outputs (weight gradients of early layers: K = N*H*W, few output tiles) are split
 * along K into partial slabs, summed afterwards, so that both cores get work.
 */
function convProduct(product: ConvProduct, p: ConvPlan, a: Tensor, b: Tensor, out: Tensor, bias?: Tensor): void {
  const cinG = p.cin / p.groups;
  const coutG = p.cout / p.groups;
  const kk = p.kh * p.kw;
  const dims =
    product === 'forward'
      ? { M: coutG, N: p.Ho * p.Wo, K: cinG * kk, batches: p.n * p.groups }
      : product === 'inputGrad'
        ? { M: cinG, N: p.H * p.W, K: coutG * kk, batches: p.n * p.groups }
        : { M: coutG, N: cinG * kk, K: p.n * p.Ho * p.Wo, batches: p.groups };
  if (out.size === 0) return;
  const variant = convVariantFor(activeDevice());
  const tiles = Math.ceil(dims.M / (variant === 'broadcast' ? 8 : 32)) * Math.ceil(dims.N / 32) * dims.batches;
  const splits = product === 'weightGrad' ? Math.max(1, Math.min(Math.floor(64 / tiles), Math.floor(dims.K / 256))) : 1;
  const kChunk = Math.ceil(dims.K / splits);
  const target = splits > 1 ? emptyTensor([splits, ...out.shape], 'float32', 'conv2d') : out;
  const { grid, tilesN } = convGrid(variant, dims.M, dims.N, dims.batches, splits);
  launch(
    convKernel({ ...geometry(p), product, bias: bias !== undefined, variant }),
    bias ? [a, b, bias] : [a, b],
    [target],
    {
      ...dims,
      cin: p.cin,
      cout: p.cout,
      cinG,
      coutG,
      groups: p.groups,
      H: p.H,
      W: p.W,
      Ho: p.Ho,
      Wo: p.Wo,
      tilesN,
      splits,
      kChunk,
      splitStride: out.size,
    },
    grid,
  );
  if (splits > 1) {
    const total = sum(target, 0);
    out.assign(total);
    total.dispose();
    target.dispose();
  }
}

/** A 1x1, stride-1, unpadded, ungrouped convolution is a batched matmul: W [O, C] @ x[n] [C, HW]. */
const isPointwise = (p: ConvPlan) =>
  p.kh === 1 && p.kw === 1 && p.strideH === 1 && p.strideW === 1 && p.padH === 0 && p.padW === 0 && p.groups === 1;

function conv2dRaw(x: Tensor, weight: Tensor, bias: Tensor | undefined, p: ConvPlan): Tensor {
  const outShape = [p.n, p.cout, p.Ho, p.Wo];
  if (isPointwise(p)) {
    return gemm(weight, x, { batch: p.n, M: p.cout, N: p.H * p.W, K: p.cin, broadcastA: true }, bias ? { bias, biasMode: 'row' } : {}, outShape);
  }
  const out = emptyTensor(outShape, 'float32', 'conv2d');
  convProduct('forward', p, weight, x, out, bias);
  return out;
}

function conv2dInputGrad(dy: Tensor, weight: Tensor, p: ConvPlan): Tensor {
  const dx = emptyTensor([p.n, p.cin, p.H, p.W], 'float32', 'conv2d.backward');
  if (isPointwise(p)) return gemm(weight, dy, { batch: p.n, M: p.cin, N: p.H * p.W, K: p.cout, broadcastA: true }, { transA: true }, dx.shape);
  convProduct('inputGrad', p, weight, dy, dx);
  return dx;
}

function conv2dWeightGrad(dy: Tensor, x: Tensor, p: ConvPlan): Tensor {
  const dw = emptyTensor([p.cout, p.cin / p.groups, p.kh, p.kw], 'float32', 'conv2d.backward');
  convProduct('weightGrad', p, dy, x, dw);
  return dw;
}

const conv2dOp = defineOp('conv2d', {
  forward: (ctx, x: Tensor, weight: Tensor, bias?: Tensor, options: Conv2dOptions = {}) => {
    const p = planConv2d(x, weight, bias, options);
    ctx.save(p);
    return conv2dRaw(x, weight, bias, p);
  },
  backward: ({ args: [x, weight, bias], saved: p, needsGrad }, g) => {
    const grads = [needsGrad[0] ? conv2dInputGrad(g, weight, p) : null, needsGrad[1] ? conv2dWeightGrad(g, x, p) : null];
    return bias ? [...grads, needsGrad[2] ? sum(g, [0, 2, 3]) : null] : grads;
  },
});

/**
 * 2-D convolution (cross-correlation, as PyTorch) of x [N, C, H, W] with weight [O, C / groups, kh, kw],
 * with stride, padding (per side, 'valid', or 'same' for stride 1), dilation, groups and optional bias [O].
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor, options: Conv2dOptions = {}): Tensor {
  if (options.padding === 'valid') return conv2dOp(x, weight, bias, { ...options, padding: 0 });
  if (options.padding !== 'same') return conv2dOp(x, weight, bias, options);
  const [sh, sw] = pair(options.stride, 1);
  if (sh !== 1 || sw !== 1) throw new Error(`conv2d: padding 'same' needs stride 1, got [${sh}, ${sw}]`);
  const [dh, dw] = pair(options.dilation, 1);
  const totalH = dh * ((weight.shape[2] ?? 1) - 1);
  const totalW = dw * ((weight.shape[3] ?? 1) - 1);
  const padding: [number, number] = [Math.floor(totalH / 2), Math.floor(totalW / 2)];
  // An odd total goes to the bottom/right, as PyTorch does.
  const extraH = totalH % 2;
  const extraW = totalW % 2;
  const input = extraH || extraW ? pad(x, [0, extraW, 0, extraH]) : x;
  return conv2dOp(input, weight, bias, { ...options, padding });
}

/**
 * Transposed convolution of x [N, C_in, H, W] with weight [C_in, C_out / groups, kh, kw] (PyTorch layout):
 * the gradient of conv2d with respect to its input. Output size (H-1)*s - 2p + d*(kh-1) + outputPadding + 1.
 */
export const convTranspose2d = defineOp('conv_transpose2d', {
  forward: (ctx, x: Tensor, weight: Tensor, bias?: Tensor, options: ConvTranspose2dOptions = {}) => {
    const op = 'convTranspose2d';
    if (x.rank !== 4 || weight.rank !== 4) {
      throw new Error(`${op}: expected input [N, C, H, W] and weight [C_in, C_out / groups, kh, kw], got ${formatShape(x.shape)} and ${formatShape(weight.shape)}`);
    }
    const groups = options.groups ?? 1;
    const [n, cin, H, W] = x.shape as [number, number, number, number];
    const [wIn, coutG, kh, kw] = weight.shape as [number, number, number, number];
    if (wIn !== cin || cin % groups !== 0) {
      throw new Error(`${op}: input ${formatShape(x.shape)} has ${cin} channels, weight ${formatShape(weight.shape)} expects ${wIn} (groups ${groups})`);
    }
    const cout = coutG * groups;
    if (bias && (bias.rank !== 1 || bias.shape[0] !== cout)) throw new Error(`${op}: bias ${formatShape(bias.shape)} does not match ${cout} output channels`);
    const [strideH, strideW] = pair(options.stride, 1);
    const [padH, padW] = pair(options.padding, 0);
    const [opH, opW] = pair(options.outputPadding, 0);
    const [dilationH, dilationW] = pair(options.dilation, 1);
    checkPositive(op, 'stride', [strideH, strideW], 1);
    checkPositive(op, 'dilation', [dilationH, dilationW], 1);
    checkPositive(op, 'padding', [padH, padW], 0);
    if (opH >= Math.max(strideH, dilationH) || opW >= Math.max(strideW, dilationW) || opH < 0 || opW < 0) {
      throw new Error(`${op}: outputPadding [${opH}, ${opW}] must be smaller than stride or dilation`);
    }
    const Ho = (H - 1) * strideH - 2 * padH + dilationH * (kh - 1) + opH + 1;
    const Wo = (W - 1) * strideW - 2 * padW + dilationW * (kw - 1) + opW + 1;
    if (Ho < 1 || Wo < 1) throw new Error(`${op}: output size ${Ho}x${Wo} is empty`);
    // As the equivalent convolution: its input is our output, its output is our input.
    const p: ConvPlan = { n, cin: cout, cout: cin, groups, H: Ho, W: Wo, Ho: H, Wo: W, kh, kw, strideH, strideW, padH, padW, dilationH, dilationW };
    ctx.save(p);
    const out = emptyTensor([n, cout, Ho, Wo], 'float32', op);
    convProduct('inputGrad', p, weight, x, out);
    if (!bias) return out;
    const withBias = gemmBias(out, bias);
    out.dispose();
    return withBias;
  },
  backward: ({ args: [x, weight, bias], saved: p, needsGrad }, g) => {
    const grads = [needsGrad[0] ? conv2dRaw(g, weight, undefined, p) : null, needsGrad[1] ? conv2dWeightGrad(x, g, p) : null];
    return bias ? [...grads, needsGrad[2] ? sum(g, [0, 2, 3]) : null] : grads;
  },
});

/** out + bias[c] over [N, C, H, W]. */
const gemmBias = (out: Tensor, bias: Tensor) => map('conv_transpose2d', 'a + b', [out, reshape(bias, [bias.shape[0]!, 1, 1])]);
