import { cachedKernel, fields, flatKernel, grid1d, type Kernel, readOnly, readWrite } from './kernel.js';

/** Largest tensor rank the strided kernels index (after merging contiguous dimensions). */
export const MAX_RANK = 8;

/**
 * NaN-safe helpers. WGSL lets compilers assume floats are never NaN or infinite (x != x, min, max and clamp
 * may be folded or pick either operand), so NaN is tested on the bits and NaN/infinity are made by bitcast.
 * max_/min_/clamp_ propagate NaN, as PyTorch's maximum, minimum, clamp and amax/amin do.
 */
export const NAN_WGSL = /* wgsl */ `
fn isnan_(x: f32) -> bool {
  let u = bitcast<u32>(x);
  return (u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0u;
}
fn isfinite_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }
// Through a let: a constant-expression bitcast to a non-finite f32 is a compile error in WGSL.
fn inf_(sign: f32) -> f32 { let bits = 0x7f800000u; return sign * bitcast<f32>(bits); }
fn max_(a: f32, b: f32) -> f32 { return select(select(max(a, b), b, isnan_(b)), a, isnan_(a)); }
fn min_(a: f32, b: f32) -> f32 { return select(select(min(a, b), b, isnan_(b)), a, isnan_(a)); }
// min(max(x, lo), hi): lo > hi gives hi, as torch.clamp does; bounds may be infinite.
fn clamp_(x: f32, lo: f32, hi: f32) -> f32 { return select(min(max(x, lo), hi), x, isnan_(x)); }
`;

/** Shared WGSL math the elementwise expressions may call. */
export const MATH_WGSL = /* wgsl */ `${NAN_WGSL}
// erf with |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26); WGSL has no builtin.
fn erf_(x: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
  return select(-y, y, x >= 0.0);
}
fn sigmoid_(x: f32) -> f32 {
  // Split by sign so exp never overflows.
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}
fn tanh_(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}
// log(1 + x) without cancellation: near 0 (|x| < 0.5) as 2 atanh(z), z = x / (2 + x), by its odd series
// (|z| <= 1/3, so eight terms reach float precision); log's own accuracy near 1 is not relied on.
fn log1p_(x: f32) -> f32 {
  if (abs(x) >= 0.5 || isnan_(x)) { return log(1.0 + x); }
  let z = x / (2.0 + x);
  let w = z * z;
  let p = 1.0 + w * (1.0 / 3.0 + w * (0.2 + w * (1.0 / 7.0 + w * (1.0 / 9.0 + w * (1.0 / 11.0 + w * (1.0 / 13.0 + w / 15.0))))));
  return 2.0 * z * p;
}
fn softplus_(x: f32) -> f32 { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
// Torch's pow: a negative base with an integral exponent keeps its sign pattern; WGSL's pow is NaN there.
fn pow_(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  let m = pow(abs(a), b);
  if (a >= 0.0) { return m; }
  if (fract(b) != 0.0) { let nan_bits = 0x7fc00000u; return bitcast<f32>(nan_bits); }
  let odd = (i32(b) & 1) == 1;
  return select(m, -m, odd);
}
`;

/**
 * GELU and its derivative as WGSL expressions in the identifier `x` (using MATH_WGSL's erf_ and tanh_): the exact
 * form and PyTorch's tanh approximation, shared by the gelu ops and the gated (GEGLU) kernels.
 */
export const GELU_WGSL = {
  erf: {
    value: (x: string) => `0.5 * ${x} * (1.0 + erf_(${x} * 0.7071067811865476))`,
    grad: (x: string) =>
      `0.5 * (1.0 + erf_(${x} * 0.7071067811865476)) + ${x} * 0.3989422804014327 * exp(-0.5 * ${x} * ${x})`,
  },
  // 0.5 x (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2/pi)
  tanh: {
    value: (x: string) => `0.5 * ${x} * (1.0 + tanh_(${tanhInner(x)}))`,
    grad: (x: string) =>
      `0.5 * (1.0 + tanh_(${tanhInner(x)})) + 0.5 * ${x} * (1.0 - tanh_(${tanhInner(x)}) * tanh_(${tanhInner(x)})) * 0.7978845608028654 * (1.0 + 0.134145 * ${x} * ${x})`,
  },
} as const;

function tanhInner(x: string): string {
  return `0.7978845608028654 * (${x} + 0.044715 * ${x} * ${x} * ${x})`;
}

export interface ElementwiseSpec {
  /**
   * WGSL expression of the output in terms of `a`, `b`, `c` (the inputs, in order) and the uniform scalars
   * `alpha`, `beta`; may call the helpers of MATH_WGSL.
   */
  expr: string;
  arity: number;
  /** Rank of the broadcast index space; 0 means every input is contiguous with the output's shape. */
  rank: number;
  /**
   * Rank 0 only: read and write vec4s, four elements per invocation (needs a size divisible by 4). On CPU
   * adapters each storage access is a per-lane loop, so a quarter of the accesses is twice the speed.
   */
  vec4?: boolean;
  /**
   * With vec4 and a rank above 0 (broadcasting, innermost run a multiple of 4): per input, 'v' reads a vec4 at
   * its index in vec4 units (unit stride along the innermost axis), 's' one value for all four lanes (stride 0
   * there: a per-row or per-channel operand).
   */
  lanes?: string;
}

const WG = 256;
const INPUT_NAMES = ['a', 'b', 'c', 'd'];

/**
 * WGSL that turns the flat output index `i` into each input's element index `i_<name>` through the uniforms
 * `shape` and `stride_<name>` (broadcast inputs have stride 0); rank 0 reads element i of every input.
 */
export function broadcastIndexWgsl(names: readonly string[], rank: number): string {
  if (rank === 0) return names.map((x) => `  let i_${x} = i;`).join('\n');
  return [
    ...names.map((x) => `  var i_${x} = 0u;`),
    '  var rem = i;',
    `  for (var d = ${rank - 1}; d >= 0; d--) {`,
    '    let s = params.shape[d / 4][d % 4];',
    '    let coord = rem % s;',
    '    rem = rem / s;',
    ...names.map((x) => `    i_${x} += coord * params.stride_${x}[d / 4][d % 4];`),
    '  }',
  ].join('\n');
}

/**
 * out[i] = expr(a[ia], b[ib], ...) over the output's elements, each input read through its own strides
 * (stride 0 broadcasts). With rank 0 every input is read at i directly, the fast path for equal shapes.
 */
export const elementwiseKernel = cachedKernel((spec: ElementwiseSpec): Kernel => {
  const { expr, arity, rank } = spec;
  if (spec.vec4 && rank > 0) return vec4BroadcastKernel(expr, arity, rank, spec.lanes ?? '');
  if (spec.vec4) return vec4Kernel(expr, arity);
  if (arity < 1 || arity > INPUT_NAMES.length) throw new Error(`elementwiseKernel: arity ${arity} not in 1..4`);
  if (rank > MAX_RANK) throw new Error(`elementwiseKernel: rank ${rank} exceeds ${MAX_RANK}`);
  const names = INPUT_NAMES.slice(0, arity);
  const arr = { array: 'u32' as const, length: MAX_RANK };
  const uniforms = [
    { name: 'n', type: 'u32' as const },
    { name: 'alpha', type: 'f32' as const },
    { name: 'beta', type: 'f32' as const },
    ...(rank > 0 ? [{ name: 'shape', type: arr }, ...names.map((x) => ({ name: `stride_${x}`, type: arr }))] : []),
  ];
  const index = broadcastIndexWgsl(names, rank);
  return flatKernel({
    key: `ew:${arity}:${rank}:${expr}`,
    buffers: [...names.map((x) => readOnly(`in_${x}`)), readWrite('out')],
    uniforms,
    workgroupSize: WG,
    helpers: MATH_WGSL,
    body: /* wgsl */ `
  let alpha = params.alpha;
  let beta = params.beta;
${index}
${names.map((x) => `  let ${x} = in_${x}[i_${x}];`).join('\n')}
  out[i] = ${expr};`,
  });
});

/** The scalar expression applied to each component of the vec4s v_a, v_b, ..., into `r`. */
const perLane = (expr: string, names: readonly string[]) =>
  [0, 1, 2, 3]
    .map((k) => `  { ${names.map((x) => `let ${x} = v_${x}[${k}];`).join(' ')} r[${k}] = ${expr}; }`)
    .join('\n');

/**
 * Broadcasting in vec4 units: four consecutive outputs of one innermost run per invocation, through the same
 * index arithmetic as the scalar kernel on a shape whose innermost size is divided by 4 (see `lanes`).
 */
function vec4BroadcastKernel(expr: string, arity: number, rank: number, lanes: string): Kernel {
  if (rank > MAX_RANK) throw new Error(`elementwiseKernel: rank ${rank} exceeds ${MAX_RANK}`);
  if (lanes.length !== arity || /[^vs]/.test(lanes))
    throw new Error(`elementwiseKernel: lanes '${lanes}' must give 'v' or 's' for each of ${arity} inputs`);
  const names = INPUT_NAMES.slice(0, arity);
  const arr = { array: 'u32' as const, length: MAX_RANK };
  return flatKernel({
    key: `ew4b:${arity}:${rank}:${lanes}:${expr}`,
    buffers: [
      ...names.map((x, k) => readOnly(`in_${x}`, lanes[k] === 'v' ? 'vec4<f32>' : 'f32')),
      readWrite('out', 'vec4<f32>'),
    ],
    uniforms: [
      { name: 'n', type: 'u32' },
      ...fields('f32', 'alpha', 'beta'),
      { name: 'shape', type: arr },
      ...names.map((x) => ({ name: `stride_${x}`, type: arr })),
    ],
    workgroupSize: WG,
    helpers: MATH_WGSL,
    body: /* wgsl */ `
  let alpha = params.alpha;
  let beta = params.beta;
${broadcastIndexWgsl(names, rank)}
${names.map((x, k) => `  let v_${x} = ${lanes[k] === 'v' ? `in_${x}[i_${x}]` : `vec4<f32>(in_${x}[i_${x}])`};`).join('\n')}
  var r: vec4<f32>;
${perLane(expr, names)}
  out[i] = r;`,
  });
}

/** Contiguous inputs as vec4s: the scalar expression is applied to each component. */
function vec4Kernel(expr: string, arity: number): Kernel {
  const names = INPUT_NAMES.slice(0, arity);
  const lanes = perLane(expr, names);
  return flatKernel({
    key: `ew4:${arity}:${expr}`,
    buffers: [...names.map((x) => readOnly(`in_${x}`, 'vec4<f32>')), readWrite('out', 'vec4<f32>')],
    uniforms: [{ name: 'n', type: 'u32' }, ...fields('f32', 'alpha', 'beta')],
    workgroupSize: WG,
    helpers: MATH_WGSL,
    body: /* wgsl */ `
  let alpha = params.alpha;
  let beta = params.beta;
${names.map((x) => `  let v_${x} = in_${x}[i];`).join('\n')}
  var r: vec4<f32>;
${lanes}
  out[i] = r;`,
  });
}

export const elementwiseGrid = (n: number) => grid1d(n, WG);
