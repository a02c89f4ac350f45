import { MAX_RANK, broadcastIndexWgsl } from './elementwise.js';
import { cachedKernel, fields, flatKernel, type Grid, grid1d, type Kernel, readOnly, readWrite } from './kernel.js';

/*
 * Typed kernels for int32 arithmetic (PyTorch's integer semantics: wrapping two's-complement add, sub and mul,
 * floor division) and the serial [O, R, I] reduction that int32 sums and every product use.
 */

const WG = 256;
const INPUT_NAMES = ['a', 'b', 'c'];

export type WgslScalar = 'i32' | 'f32';

/** WGSL helpers the typed expressions may call. */
export const INTEGER_WGSL = /* wgsl */ `
// Python's a // b on int32: rounds toward negative infinity. A zero divisor gives 0 (checked by the host
// for scalar divisors); i32 min // -1 wraps to i32 min, as PyTorch does.
fn floordiv_i32(a: i32, b: i32) -> i32 {
  if (b == 0) { return 0; }
  if (b == -1) { return 0 - a; }
  let q = a / b;
  let r = a - q * b;
  return select(q, q - 1, r != 0 && ((r < 0) != (b < 0)));
}
// PyTorch's div_floor for floats: (a - fmod(a, b)) / b, adjusted to the floor, rounded to the nearest integer.
fn floordiv_f32(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return a / b; }
  let m = a - b * trunc(a / b);
  var d = (a - m) / b;
  if (m != 0.0 && ((b < 0.0) != (m < 0.0))) { d = d - 1.0; }
  if (d == 0.0) { return select(0.0, -0.0, (a < 0.0) != (b < 0.0)); }
  var f = floor(d);
  if (d - f > 0.5) { f = f + 1.0; }
  return f;
}
`;

export interface TypedElementwiseSpec {
  /** WGSL expression of the output in the inputs a, b, c and the i32 uniforms alpha, beta. */
  expr: string;
  /** Element type of each input (its length is the arity). */
  inputs: readonly WgslScalar[];
  out: WgslScalar;
  /** Rank of the broadcast index space; 0 reads every input at the output's index. */
  rank: number;
}

/** out[i] = expr(a[ia], b[ib], ...) with typed (i32/f32) buffers and i32 scalars; strides as elementwiseKernel. */
export const typedElementwiseKernel = cachedKernel((spec: TypedElementwiseSpec): Kernel => {
  const { expr, inputs, out, rank } = spec;
  if (inputs.length < 1 || inputs.length > INPUT_NAMES.length)
    throw new Error(`typedElementwiseKernel: arity ${inputs.length} not in 1..3`);
  if (rank > MAX_RANK) throw new Error(`typedElementwiseKernel: rank ${rank} exceeds ${MAX_RANK}`);
  const names = INPUT_NAMES.slice(0, inputs.length);
  const arr = { array: 'u32' as const, length: MAX_RANK };
  const index = broadcastIndexWgsl(names, rank);
  return flatKernel({
    key: `typed-ew:${inputs.join(',')}:${out}:${rank}:${expr}`,
    buffers: [...names.map((x, k) => readOnly(`in_${x}`, inputs[k]!)), readWrite('out', out)],
    uniforms: [
      { name: 'n', type: 'u32' },
      ...fields('i32', 'alpha', 'beta'),
      ...(rank > 0 ? [{ name: 'shape', type: arr }, ...names.map((x) => ({ name: `stride_${x}`, type: arr }))] : []),
    ],
    workgroupSize: WG,
    helpers: INTEGER_WGSL,
    body: /* wgsl */ `
  let alpha = params.alpha;
  let beta = params.beta;
${index}
${names.map((x) => `  let ${x} = in_${x}[i_${x}];`).join('\n')}
  out[i] = ${expr};`,
  });
});

export const typedElementwiseGrid = (n: number): Grid => grid1d(n, WG);

export type SerialReduceOp = 'sum' | 'prod' | 'max' | 'min';

const FOLD: Record<SerialReduceOp, { init: (t: WgslScalar) => string; step: string }> = {
  sum: { init: (t) => (t === 'i32' ? '0' : '0.0'), step: 'acc + v' },
  prod: { init: (t) => (t === 'i32' ? '1' : '1.0'), step: 'acc * v' },
  max: { init: () => 'x[base]', step: 'max(acc, v)' },
  min: { init: () => 'x[base]', step: 'min(acc, v)' },
};

/**
 * out[o, i] = fold over r of x[o, r, i] for x viewed as [O, R, I], one invocation per output in index order
 * (so int32 sums wrap exactly as a sequential sum would). For int32 reductions and products, whose
 * [O, R, I] shapes in practice have many outputs; float max/min of NaN are not handled here.
 */
export const serialReduceKernel = cachedKernel((op: SerialReduceOp, type: WgslScalar): Kernel => {
  const f = FOLD[op];
  return flatKernel({
    key: `serial-reduce:${op}:${type}`,
    buffers: [
      { name: 'x', access: 'read', type },
      { name: 'out', access: 'read_write', type },
    ],
    uniforms: fields('u32', 'O', 'R', 'I'),
    workgroupSize: WG,
    index: 'j',
    bound: 'params.O * params.I',
    body: /* wgsl */ `
  let o = j / params.I;
  let inner = j % params.I;
  let base = o * params.R * params.I + inner;
  var acc: ${type} = ${f.init(type)};
  for (var r = 0u; r < params.R; r++) {
    let v = x[base + r * params.I];
    acc = ${f.step};
  }
  out[j] = acc;`,
  });
});

export const serialReduceGrid = (outputs: number): Grid => grid1d(outputs, WG);
