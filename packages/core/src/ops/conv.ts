import {
  type ConvGeometry,
  type ConvProduct,
  type ConvVariant,
  convGrid,
  convKernel,
  slidingConvKernel,
  slidingConvLaunch,
  slidingWeightKernel,
  grid1d,
  strideSpreadKernel,
  winogradF4FilterGradKernel,
  winogradF4FilterKernel,
  winogradF4GradKernel,
  winogradF4InputKernel,
  winogradF4OutputKernel,
  winogradFilterGradKernel,
  winogradFilterGrid,
  winogradFilterKernel,
  winogradGradKernel,
  winogradInputKernel,
  winogradOutputKernel,
  winogradTileGrid,
} from '@leffa-webgpu/kernels-wgsl';
import { type Device, activeDevice } from '../device/device.js';
import { defineOp } from '../autograd/op.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { cast } from './cast.js';
import { emptyTensor, floatResult, launch } from '../forward/launch.js';
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

const pair = (v: Pair | undefined, d: number): [number, number] =>
  v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : [v[0], v[1]];

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
  if (v.some((x) => !Number.isInteger(x) || x < min))
    throw new Error(`${op}: ${what} must be integers >= ${min}, got [${v.join(', ')}]`);
}

function planConv2d(x: Tensor, weight: Tensor, bias: Tensor | undefined, o: Conv2dOptions): ConvPlan {
  floatResult('conv2d', bias ? [x, weight, bias] : [x, weight]);
  return planConv2dShapes(x.shape, weight.shape, bias?.shape, o);
}

function planConv2dShapes(
  xShape: readonly number[],
  wShape: readonly number[],
  biasShape: readonly number[] | undefined,
  o: Conv2dOptions,
): ConvPlan {
  const op = 'conv2d';
  if (xShape.length !== 4) throw new Error(`${op}: input must be [N, C, H, W], got ${formatShape(xShape)}`);
  if (wShape.length !== 4)
    throw new Error(`${op}: weight must be [out, in / groups, kh, kw], got ${formatShape(wShape)}`);
  const groups = o.groups ?? 1;
  const [n, cin, H, W] = xShape as [number, number, number, number];
  const [cout, cinG, kh, kw] = wShape as [number, number, number, number];
  if (!Number.isInteger(groups) || groups < 1 || cin % groups !== 0 || cout % groups !== 0) {
    throw new Error(`${op}: groups ${groups} must divide input channels ${cin} and output channels ${cout}`);
  }
  if (cinG * groups !== cin) {
    throw new Error(
      `${op}: input ${formatShape(xShape)} has ${cin} channels, weight ${formatShape(wShape)} expects ${cinG} x groups ${groups}`,
    );
  }
  if (biasShape && (biasShape.length !== 1 || biasShape[0] !== cout)) {
    throw new Error(`${op}: bias ${formatShape(biasShape)} does not match ${cout} output channels`);
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
    throw new Error(
      `${op}: kernel ${kh}x${kw} (dilation ${dilationH}x${dilationW}) does not fit input ${H}x${W} with padding ${padH}x${padW}`,
    );
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

export type { ConvVariant } from '@leffa-webgpu/kernels-wgsl';

let forcedVariant: ConvVariant | null = null;

/**
 * Overrides the adapter-based implicit-GEMM kernel choice for every later convolution (null restores it), for
 * tests and checks that run each variant on one adapter; 'broadcast' needs the subgroups feature.
 */
export function setConvVariant(variant: ConvVariant | null): void {
  if (variant !== null && variant !== 'register' && variant !== 'broadcast') {
    throw new Error(`setConvVariant: expected 'register', 'broadcast' or null, got '${String(variant)}'`);
  }
  forcedVariant = variant;
}

/** Whether the device's subgroups hold the 8 lanes the subgroup-broadcast kernels share values among. */
const hasSubgroupsOf8 = (device: Device) =>
  device.hasSubgroups &&
  ((device.gpu as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo?.subgroupMinSize ?? 0) >= 8;

/** The subgroup-broadcast kernel on CPU adapters with 8-wide subgroups (as for matmul), registers elsewhere. */
export function convVariantFor(device: Device): ConvVariant {
  if (forcedVariant) return forcedVariant;
  return device.report.isCpu && hasSubgroupsOf8(device) ? 'broadcast' : 'register';
}

/**
 * How a convolution product runs: 'direct' is the implicit GEMM (any geometry); 'winograd' is F(2x2, 3x3)
 * (kernels-wgsl winograd.ts: transforms plus 16 batched products on the matmul kernel), 'winograd4' F(4x4, 3x3)
 * (winograd-f4.ts: 36 batched products over a quarter of the tiles) and 'sliding' a direct sliding-window kernel
 * (kernels-wgsl conv-sliding.ts; forward and input gradient only, needs subgroups), all for stride-1,
 * undilated, ungrouped 3x3 convolutions with padding at most 2.
 */
export type ConvAlgorithm = 'direct' | 'winograd' | 'winograd4' | 'sliding';
const CONV_ALGORITHMS: readonly ConvAlgorithm[] = ['direct', 'winograd', 'winograd4', 'sliding'];

let forcedAlgorithm: ConvAlgorithm | null = null;

/**
 * Overrides the automatic choice of convolution algorithm for every later conv2d / convTranspose2d product
 * (null restores it), for tests and benchmarks that exercise every path. Forcing 'winograd' or 'sliding' applies
 * where that algorithm can compute the product at all (see `convAlgorithmFor`); other products stay direct.
 */
export function setConvAlgorithm(algorithm: ConvAlgorithm | null): void {
  if (algorithm !== null && !CONV_ALGORITHMS.includes(algorithm)) {
    throw new Error(
      `setConvAlgorithm: expected ${CONV_ALGORITHMS.map((a) => `'${a}'`).join(', ')} or null, got '${String(algorithm)}'`,
    );
  }
  forcedAlgorithm = algorithm;
}

let vectorLoads = true;

/**
 * Whether the sliding 3x3 kernel reads its weights packed as vec4 rows and, where image rows come in fours, the
 * image as vec4 chunks (true, the default: fewer per-lane loads, same results bit for bit); false reads both
 * as scalars, as before, for tests and benchmarks that compare the two.
 */
export function setConvVectorLoads(enabled: boolean): void {
  if (typeof enabled !== 'boolean')
    throw new Error(`setConvVectorLoads: expected true or false, got ${String(enabled)}`);
  vectorLoads = enabled;
}

/** Rounds up to a multiple of 4 (the vec4 alignment the matmul kernel wants along the summed dimension). */
const up4 = (n: number) => Math.ceil(n / 4) * 4;

/** The transform kernels of F(m x m, 3x3) and its number of positions ((m + 2)^2 batched products). */
const WINOGRAD = {
  2: {
    positions: 16,
    input: winogradInputKernel,
    grad: winogradGradKernel,
    output: winogradOutputKernel,
    filter: winogradFilterKernel,
    filterGrad: winogradFilterGradKernel,
  },
  4: {
    positions: 36,
    input: winogradF4InputKernel,
    grad: winogradF4GradKernel,
    output: winogradF4OutputKernel,
    filter: winogradF4FilterKernel,
    filterGrad: winogradF4FilterGradKernel,
  },
} as const;
type WinogradTile = keyof typeof WINOGRAD;

/** Winograd's m x m tiles of one product: over the input for the input gradient, over the output otherwise. */
function winogradTiles(product: ConvProduct, p: ConvPlan, m: WinogradTile): number {
  const [h, w] = product === 'inputGrad' ? [p.H, p.W] : [p.Ho, p.Wo];
  return p.n * Math.ceil(h / m) * Math.ceil(w / m);
}

/** Bytes of the largest Winograd intermediate (V, M or dM: positions x channels x tiles floats) of one product. */
function winogradBytes(product: ConvProduct, p: ConvPlan, m: WinogradTile): number {
  const P = WINOGRAD[m].positions;
  // The filter-side transform [P, Cout, Cin'] (or its transpose) is as large as the image side for wide layers.
  const filter = P * 4 * Math.max(p.cout, p.cin) * Math.max(up4(p.cin), up4(p.cout));
  const channels = product === 'inputGrad' ? Math.max(up4(p.cout), p.cin) : Math.max(up4(p.cin), p.cout);
  return Math.max(filter, P * 4 * up4(winogradTiles(product, p, m)) * channels);
}

/** The sliding kernel's launch for a forward or input-gradient product (null: its grid would not fit). */
function slidingLaunch(product: ConvProduct, p: ConvPlan) {
  return product === 'forward'
    ? slidingConvLaunch(p.n, p.cout, p.cin, p.H, p.W, p.Ho, p.Wo)
    : slidingConvLaunch(p.n, p.cin, p.cout, p.Ho, p.Wo, p.H, p.W);
}

/**
 * The algorithm a product of this convolution runs with. Winograd and the sliding kernel need a stride-1,
 * undilated, ungrouped 3x3 kernel and padding at most 2 (the input gradient is a forward product with padding
 * 2 - p); Winograd also needs intermediates that fit one storage binding, the sliding kernel subgroups of at least
 * 8 lanes, and it computes no weight gradient. Chosen automatically on CPU adapters with the subgroup matmul (where
 * they were measured) when no tensor is float16; everywhere else the direct product stays, unless forced with
 * `setConvAlgorithm`.
 */
function convAlgorithmFor(
  product: ConvProduct,
  p: ConvPlan,
  half = false,
  device: Device = activeDevice(),
): ConvAlgorithm {
  const stride1x3 =
    p.kh === 3 &&
    p.kw === 3 &&
    p.strideH === 1 &&
    p.strideW === 1 &&
    p.dilationH === 1 &&
    p.dilationW === 1 &&
    p.groups === 1 &&
    p.padH <= 2 &&
    p.padW <= 2;
  if (!stride1x3) return 'direct';
  const bindable = Math.min(device.gpu.limits.maxStorageBufferBindingSize, device.gpu.limits.maxBufferSize);
  const winogradFits = winogradBytes(product, p, 2) <= bindable;
  const winograd4Fits = winogradBytes(product, p, 4) <= bindable;
  const slidingFits = product !== 'weightGrad' && hasSubgroupsOf8(device) && slidingLaunch(product, p) !== null;
  if (forcedAlgorithm) {
    const fits = {
      direct: true,
      winograd: winogradFits,
      winograd4: winograd4Fits,
      sliding: slidingFits,
    }[forcedAlgorithm];
    return fits ? forcedAlgorithm : 'direct';
  }
  // float16 convolutions exist to save memory: Winograd's float32 intermediates are 16/9 of the filters and 4x
  // the image (three to six times the float16 tensors they come from), so they take the direct product.
  if (half || convVariantFor(device) !== 'broadcast') return 'direct';
  // Measured on lavapipe (BENCHMARKS.md): the weight gradient (a long reduction over tiles) wins with Winograd
  // from 8 channels. The forward and input gradient run the sliding kernel up to 96 channels on either side
  // (1.2-1.6x the implicit GEMM at 16; at 64 channels 1.3-2x the faster Winograd from 4x3 to 32x24 maps, batch 4,
  // since Winograd's transforms are three more dispatches and intermediates that cost more than they save there;
  // level at 128 on 16x12) and Winograd above. F(4x4) beats F(2x2) (fwd + bwd 1.2x at 320 channels and 32x24,
  // 1.8x at 64x48) once its filter-side transforms ([36, Cout, Cin], 2.25x F(2x2)'s) are spread over enough
  // tiles: from 32 tiles of 4x4; at 12 tiles (640 channels at 16x12) it was 1.5-2x slower.
  const tiles4 = winogradTiles(product, p, 4);
  const winograd: ConvAlgorithm = winograd4Fits && tiles4 >= 32 ? 'winograd4' : winogradFits ? 'winograd' : 'direct';
  if (product === 'weightGrad') return p.cin >= 8 && p.cout >= 8 ? winograd : 'direct';
  if (Math.min(p.cin, p.cout) <= 96 && slidingFits) return 'sliding';
  return p.cin >= 32 && p.cout >= 32 ? winograd : 'direct';
}

/**
 * A forward or input-gradient product on the sliding kernel: `a` the weight, `b` the image (x, or dy for the
 * input gradient, read with the weight flipped and transposed and padding 2 - p).
 */
function slidingProduct(product: ConvProduct, p: ConvPlan, a: Tensor, b: Tensor, out: Tensor, bias?: Tensor): void {
  const fwd = product === 'forward';
  const { uniforms, grid, strip } = slidingLaunch(product, p)!;
  const pads = fwd ? { padH: p.padH, padW: p.padW } : { padH: 2 - p.padH, padW: 2 - p.padW };
  // Vector loads: the weights packed as vec4 rows and, where the image's rows come in fours, the image read as vec4
  // chunks. Packing is one more dispatch (0.1-0.3 ms on lavapipe), which outweighed the loads it saves below
  // 16x12 outputs (8x6 at 32 channels, batch 8: 1.38 against 1.18 ms), so small products read the weight in place.
  const packed = vectorLoads && a.dtype === 'float32' && (fwd ? p.Ho * p.Wo : p.H * p.W) >= 16 * 12;
  const vec = vectorLoads && b.dtype === 'float32' && (fwd ? p.W : p.Wo) % 4 === 0;
  const weight = packed ? emptyTensor([uniforms.C * 3 * uniforms.Mp * 4], 'float32', 'conv2d.sliding') : a;
  try {
    if (packed) {
      const { M, Mp, C } = uniforms;
      launch(slidingWeightKernel(!fwd), [a], [weight], { n: C * 3 * Mp, M, Mp, C }, grid1d(C * 3 * Mp, 64));
    }
    launch(
      slidingConvKernel({ flip: !fwd, bias: bias !== undefined, ...pads, vec, packed, strip }),
      bias ? [weight, b, bias] : [weight, b],
      [out],
      uniforms,
      grid,
    );
  } finally {
    if (packed) weight.dispose();
  }
}

/** Tile-transform uniforms for an image-side tensor of `C` channels and an output of `Ho` x `Wo` in m x m tiles. */
function tileParams(
  m: WinogradTile,
  n: number,
  C: number,
  H: number,
  W: number,
  Ho: number,
  Wo: number,
  padH: number,
  padW: number,
) {
  const th = Math.ceil(Ho / m);
  const tw = Math.ceil(Wo / m);
  const T = n * th * tw;
  return { C, Cp: up4(C), H, W, th, tw, T, Tp: up4(T), padH, padW };
}

/**
 * One product as Winograd F(m x m, 3x3) with P = (m + 2)^2 positions (see kernels-wgsl winograd.ts, winograd-f4.ts):
 * - forward:    U = G w G^T [P, Cout, Cin'], V = transform(x) [P, Cin', T'], M = U @ V, out = A^T M A + bias;
 * - inputGrad:  the forward on dy with the filter flipped and transposed, padding 2 - p (output H x W);
 * - weightGrad: dM = A dy A^T [P, Cout, T'], V = transform(x), dU = dM @ V^T [P, Cout, Cin'], dw = G^T dU G.
 * (' = rounded up to a multiple of 4, the padding written as zeros.)
 */
function winogradProduct(
  m: WinogradTile,
  product: ConvProduct,
  p: ConvPlan,
  a: Tensor,
  b: Tensor,
  out: Tensor,
  bias?: Tensor,
): void {
  const K = WINOGRAD[m];
  const P = K.positions;
  const temps: Tensor[] = [];
  const temp = (shape: number[]) => {
    const t = emptyTensor(shape, 'float32', 'conv2d.winograd');
    temps.push(t);
    return t;
  };
  // V (or dy's transform for the input gradient) of an image-side tensor.
  const transform = (src: Tensor, tp: ReturnType<typeof tileParams>) => {
    const v = temp([P, tp.Cp, tp.Tp]);
    launch(K.input(), [src], [v], tp, winogradTileGrid(tp.Cp, tp.Tp));
    return v;
  };
  try {
    if (product === 'forward' || product === 'inputGrad') {
      // The forward product of an image x [n, C, H, W] with filters [rows, C] into y [n, rows, Ho, Wo].
      const fwd = product === 'forward';
      const [rows, C] = fwd ? [p.cout, p.cin] : [p.cin, p.cout];
      const tp = fwd
        ? tileParams(m, p.n, p.cin, p.H, p.W, p.Ho, p.Wo, p.padH, p.padW)
        : tileParams(m, p.n, p.cout, p.Ho, p.Wo, p.H, p.W, 2 - p.padH, 2 - p.padW);
      const u = temp([P, rows, tp.Cp]);
      launch(K.filter(!fwd), [a], [u], { rows, cols: C, colsP: tp.Cp }, winogradFilterGrid(rows, tp.Cp));
      const v = transform(b, tp);
      // M[xi] = U[xi] @ V[xi] for the P positions: [P, rows, Tp]. Tp is a multiple of 4, so gemm stores vec4 rows,
      // which matters here because the channel sums (K) are often short.
      const prod = gemm(u, v, { batch: P, M: rows, N: tp.Tp, K: tp.Cp });
      temps.push(prod);
      const [Ho, Wo] = fwd ? [p.Ho, p.Wo] : [p.H, p.W];
      const outParams = { ...tp, C: rows, Cp: rows, H: Ho, W: Wo };
      launch(
        K.output(bias !== undefined),
        bias ? [prod, bias] : [prod],
        [out],
        outParams,
        winogradTileGrid(rows, tp.Tp),
      );
      return;
    }
    // weightGrad: a = dy [n, Cout, Ho, Wo], b = x [n, Cin, H, W].
    const tp = tileParams(m, p.n, p.cin, p.H, p.W, p.Ho, p.Wo, p.padH, p.padW);
    const v = transform(b, tp);
    const gp = { ...tp, C: p.cout, Cp: p.cout, H: p.Ho, W: p.Wo };
    const dm = temp([P, p.cout, tp.Tp]);
    launch(K.grad(), [a], [dm], gp, winogradTileGrid(p.cout, tp.Tp));
    const du = gemm(dm, v, { batch: P, M: p.cout, N: tp.Cp, K: tp.Tp }, { transB: true });
    temps.push(du);
    launch(K.filterGrad(), [du], [out], { rows: p.cout, cols: p.cin, colsP: tp.Cp }, winogradFilterGrid(p.cout, p.cin));
  } finally {
    for (const t of temps) t.dispose();
  }
}

/**
 * The stride-1 twin of a strided convolution (same kernel, padding and input; output Hs x Ws) when its input
 * gradient runs on a faster algorithm than the implicit GEMM (see stridedInputGrad), else null. Strided products
 * themselves always take the implicit GEMM (convAlgorithmFor).
 */
function spreadPlan(p: ConvPlan, half: boolean): ConvPlan | null {
  if (p.strideH === 1 && p.strideW === 1) return null;
  const Ho = p.H + 2 * p.padH - p.dilationH * (p.kh - 1);
  const Wo = p.W + 2 * p.padW - p.dilationW * (p.kw - 1);
  if (Ho <= 0 || Wo <= 0) return null;
  const unit = { ...p, strideH: 1, strideW: 1, Ho, Wo };
  return convAlgorithmFor('inputGrad', unit, half) === 'direct' ? null : unit;
}

/**
 * A strided convolution's input gradient as its stride-1 twin's, on dy spread to the stride-1 grid (zeros between;
 * strideSpreadKernel). For a 3x3 kernel at stride 2 that is 4x the multiplies, but on the sliding kernel or
 * Winograd instead of the implicit GEMM, which gathers every tap and skips the 3 in 4 that do not land: forward +
 * input gradient of the tiny VAE's downsamplers 1.3x faster on lavapipe, of a 320-channel one 2.9x (BENCHMARKS.md).
 */
function stridedInputGrad(p: ConvPlan, unit: ConvPlan, weight: Tensor, dy: Tensor, out: Tensor): void {
  const spread = emptyTensor([p.n, p.cout, unit.Ho, unit.Wo], 'float32', 'conv2d.backward');
  try {
    launch(
      strideSpreadKernel(),
      [dy],
      [spread],
      { n: spread.size, Ho: p.Ho, Wo: p.Wo, Hs: unit.Ho, Ws: unit.Wo, sH: p.strideH, sW: p.strideW },
      grid1d(spread.size, 256),
    );
    convProduct('inputGrad', unit, weight, spread, out);
  } finally {
    spread.dispose();
  }
}

/**
 * Launches one convolution product: Winograd or the sliding kernel where `convAlgorithmFor` picks them, else one implicit-GEMM product
 * (see kernels-wgsl conv.ts for what A, B, M, N, K mean in each).
 * Long reductions over few outputs (weight gradients of early layers: K = N*H*W, few output tiles) are split
 * along K into partial slabs, summed afterwards, so that both cores get work.
 */
function convProduct(product: ConvProduct, p: ConvPlan, a: Tensor, b: Tensor, out: Tensor, bias?: Tensor): void {
  const half = [a, b, out].some((t) => t.dtype === 'float16');
  const algorithm = out.size > 0 ? convAlgorithmFor(product, p, half) : 'direct';
  const unit = product === 'inputGrad' && out.size > 0 ? spreadPlan(p, half) : null;
  if (unit) {
    stridedInputGrad(p, unit, a, b, out);
    return;
  }
  if (algorithm === 'winograd' || algorithm === 'winograd4') {
    winogradProduct(algorithm === 'winograd' ? 2 : 4, product, p, a, b, out, bias);
    return;
  }
  if (algorithm === 'sliding') {
    slidingProduct(product, p, a, b, out, bias);
    return;
  }
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
    // The partial slabs are float32; a float16 output gets their sum rounded once.
    const summed = sum(target, 0);
    const total = cast(summed, out.dtype);
    out.assign(total);
    total.dispose();
    summed.dispose();
    target.dispose();
  }
}

/** A 1x1, stride-1, unpadded, ungrouped convolution is a batched matmul: W [O, C] @ x[n] [C, HW]. */
const isPointwise = (p: ConvPlan) =>
  p.kh === 1 && p.kw === 1 && p.strideH === 1 && p.strideW === 1 && p.padH === 0 && p.padW === 0 && p.groups === 1;

function conv2dRaw(x: Tensor, weight: Tensor, bias: Tensor | undefined, p: ConvPlan): Tensor {
  const outShape = [p.n, p.cout, p.Ho, p.Wo];
  if (isPointwise(p)) {
    return gemm(
      weight,
      x,
      { batch: p.n, M: p.cout, N: p.H * p.W, K: p.cin, broadcastA: true },
      bias ? { bias, biasMode: 'row' } : {},
      outShape,
    );
  }
  const out = emptyTensor(outShape, floatResult('conv2d', bias ? [x, weight, bias] : [x, weight]), 'conv2d');
  convProduct('forward', p, weight, x, out, bias);
  return out;
}

function conv2dInputGrad(dy: Tensor, weight: Tensor, p: ConvPlan): Tensor {
  const dx = emptyTensor([p.n, p.cin, p.H, p.W], floatResult('conv2d.backward', [dy, weight]), 'conv2d.backward');
  if (isPointwise(p))
    return gemm(
      weight,
      dy,
      { batch: p.n, M: p.cin, N: p.H * p.W, K: p.cout, broadcastA: true },
      { transA: true },
      dx.shape,
    );
  convProduct('inputGrad', p, weight, dy, dx);
  return dx;
}

function conv2dWeightGrad(dy: Tensor, x: Tensor, p: ConvPlan): Tensor {
  const dw = emptyTensor(
    [p.cout, p.cin / p.groups, p.kh, p.kw],
    floatResult('conv2d.backward', [dy, x]),
    'conv2d.backward',
  );
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
    const grads = [
      needsGrad[0] ? conv2dInputGrad(g, weight, p) : null,
      needsGrad[1] ? conv2dWeightGrad(g, x, p) : null,
    ];
    return bias ? [...grads, needsGrad[2] ? sum(g, [0, 2, 3]) : null] : grads;
  },
});

/**
 * The algorithm each product of `conv2d(x, weight, bias, options)` would run with on the active device now
 * (after `setConvAlgorithm`) for tensors of `dtype`: the forward, the input gradient and the weight gradient.
 * 1x1 stride-1 convolutions take the matmul path for the forward and input gradient and report 'direct'; a strided
 * input gradient that runs as its stride-1 twin's (stridedInputGrad) reports that one's algorithm.
 */
export function conv2dAlgorithms(
  xShape: readonly number[],
  weightShape: readonly number[],
  options: Omit<Conv2dOptions, 'padding'> & { padding?: Pair } = {},
  dtype: 'float32' | 'float16' = 'float32',
): Record<ConvProduct, ConvAlgorithm> {
  const p = planConv2dShapes(xShape, weightShape, undefined, options);
  const half = dtype === 'float16';
  const unit = spreadPlan(p, half);
  return {
    forward: convAlgorithmFor('forward', p, half),
    inputGrad: convAlgorithmFor('inputGrad', unit ?? p, half),
    weightGrad: convAlgorithmFor('weightGrad', p, half),
  };
}

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
      throw new Error(
        `${op}: expected input [N, C, H, W] and weight [C_in, C_out / groups, kh, kw], got ${formatShape(x.shape)} and ${formatShape(weight.shape)}`,
      );
    }
    const groups = options.groups ?? 1;
    const [n, cin, H, W] = x.shape as [number, number, number, number];
    const [wIn, coutG, kh, kw] = weight.shape as [number, number, number, number];
    if (wIn !== cin || cin % groups !== 0) {
      throw new Error(
        `${op}: input ${formatShape(x.shape)} has ${cin} channels, weight ${formatShape(weight.shape)} expects ${wIn} (groups ${groups})`,
      );
    }
    const cout = coutG * groups;
    if (bias && (bias.rank !== 1 || bias.shape[0] !== cout))
      throw new Error(`${op}: bias ${formatShape(bias.shape)} does not match ${cout} output channels`);
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
    const p: ConvPlan = {
      n,
      cin: cout,
      cout: cin,
      groups,
      H: Ho,
      W: Wo,
      Ho: H,
      Wo: W,
      kh,
      kw,
      strideH,
      strideW,
      padH,
      padW,
      dilationH,
      dilationW,
    };
    ctx.save(p);
    const out = emptyTensor([n, cout, Ho, Wo], floatResult(op, [x, weight]), op);
    convProduct('inputGrad', p, weight, x, out);
    if (!bias) return out;
    const withBias = gemmBias(out, bias);
    out.dispose();
    return withBias;
  },
  backward: ({ args: [x, weight, bias], saved: p, needsGrad }, g) => {
    const grads = [
      needsGrad[0] ? conv2dRaw(g, weight, undefined, p) : null,
      needsGrad[1] ? conv2dWeightGrad(x, g, p) : null,
    ];
    return bias ? [...grads, needsGrad[2] ? sum(g, [0, 2, 3]) : null] : grads;
  },
});

/** out + bias[c] over [N, C, H, W]. */
const gemmBias = (out: Tensor, bias: Tensor) =>
  map('conv_transpose2d', 'a + b', [out, reshape(bias, [bias.shape[0]!, 1, 1])]);
