// One finite-difference case per registered differentiable op of core (opRegistry), read by the gradcheck sweep
// and by the README's generated op table. A new op without a case (or a listed reason) fails the sweep.
import * as T from '@leffa-webgpu/core';

export interface OpCase {
  /** The public function that reaches the registered op. */
  api: string;
  /** Fresh inputs (float32 leaves requiring grad are checked; others are constants such as indices and masks). */
  inputs: () => T.Tensor[];
  run: (...xs: T.Tensor[]) => T.Tensor;
  options?: T.GradcheckOptions;
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Distinct values in a fixed scrambled order: n evenly spaced in [-1.5, 1.5] (or [0.3, 1.7] when positive), so no
 * two are closer than 3/n and none is nearer 0 than 1.5/n: a 1e-2 step never crosses a kink (relu at 0, a max's
 * tie, a clamp bound away from the grid).
 */
export function values(n: number, seed: number, positive = false): number[] {
  let step = 7 + 2 * seed;
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  while (gcd(step, n) !== 1) step++;
  return Array.from({ length: n }, (_, k) => {
    const u = (((k * step + seed) % n) + 0.5) / n;
    return positive ? 0.3 + 1.4 * u : 3 * u - 1.5;
  });
}

export function leaf(shape: number[], seed: number, positive = false): T.Tensor {
  const t = T.tensor(values(sizeOf(shape), seed, positive), shape);
  t.requiresGrad = true;
  return t;
}

const fromData = (data: number[], shape: number[]) => {
  const t = T.tensor(data, shape);
  t.requiresGrad = true;
  return t;
};
const ints = (data: number[], shape: number[]) => T.tensor(Int32Array.from(data), shape);

const unaryCase = (api: string, f: (x: T.Tensor) => T.Tensor, positive = false): OpCase => ({
  api,
  inputs: () => [leaf([2, 3], 1, positive)],
  run: f,
});

/** The three registered forms of a binary op: tensor-tensor (broadcasting), tensor-number, number-tensor. */
function binaryCases(
  name: string,
  f: (a: T.Tensor | number, b: T.Tensor | number) => T.Tensor,
  opts: { positiveA?: boolean; positiveB?: boolean; sameShape?: boolean; scalar?: number } = {},
): Record<string, OpCase> {
  const s = opts.scalar ?? 0.7;
  // maximum/minimum compare elementwise: same shapes with b = a shifted by 0.3 either way keep every pair apart.
  const pair = (): T.Tensor[] => {
    if (!opts.sameShape) return [leaf([2, 3], 2, opts.positiveA), leaf([3], 3, opts.positiveB)];
    const a = values(6, 2);
    return [
      fromData(a, [2, 3]),
      fromData(
        a.map((v, i) => v + (i % 2 ? 0.3 : -0.3)),
        [2, 3],
      ),
    ];
  };
  return {
    [name]: { api: name, inputs: pair, run: (a, b) => f(a!, b!) },
    [`${name}_scalar`]: { api: name, inputs: () => [leaf([2, 3], 4, opts.positiveA)], run: (a) => f(a!, s) },
    [`${name}_rscalar`]: { api: name, inputs: () => [leaf([2, 3], 5, opts.positiveB)], run: (b) => f(s, b!) },
  };
}

// Grid points whose pixel coordinates sit 0.25 to 0.75 past an integer: bilinear sampling is smooth there.
const gridFor = (H: number, W: number, pixels: [number, number][]) =>
  pixels.flatMap(([px, py]) => [(2 * px + 1) / W - 1, (2 * py + 1) / H - 1]);

export const OP_CASES: Record<string, OpCase> = {
  // Values on a 1/64 grid survive float16 exactly, and so do steps of 1/64: the differences are exact.
  cast: {
    api: 'half',
    inputs: () => [fromData([-1.5, -0.25, 0.375, 0.828125, 1.25, -0.703125], [2, 3])],
    run: (x) => T.cast(T.half(x!), 'float32'),
    options: { eps: 1 / 64 },
  },
  neg: unaryCase('neg', T.neg),
  exp: unaryCase('exp', T.exp),
  log: unaryCase('log', T.log, true),
  sqrt: unaryCase('sqrt', T.sqrt, true),
  rsqrt: unaryCase('rsqrt', T.rsqrt, true),
  abs: unaryCase('abs', T.abs),
  relu: unaryCase('relu', T.relu),
  sigmoid: unaryCase('sigmoid', T.sigmoid),
  tanh: unaryCase('tanh', T.tanh),
  silu: unaryCase('silu', T.silu),
  softplus: unaryCase('softplus', T.softplus),
  sin: unaryCase('sin', T.sin),
  cos: unaryCase('cos', T.cos),
  square: unaryCase('square', T.square),
  reciprocal: unaryCase('reciprocal', T.reciprocal, true),
  log1p: unaryCase('log1p', T.log1p),
  erf: unaryCase('erf', T.erf),
  gelu: unaryCase('gelu', (x) => T.gelu(x)),
  gelu_tanh: unaryCase('gelu', (x) => T.gelu(x, 'tanh')),
  leaky_relu: unaryCase('leakyRelu', (x) => T.leakyRelu(x, 0.2)),
  elu: unaryCase('elu', (x) => T.elu(x)),
  clamp: {
    api: 'clamp',
    inputs: () => [fromData([-1.3, -0.4, 0.3, 0.8, 1.6, -0.9], [2, 3])],
    run: (x) => T.clamp(x!, -1, 1),
  },
  ...binaryCases('add', T.add),
  ...binaryCases('sub', T.sub),
  ...binaryCases('mul', T.mul),
  ...binaryCases('div', T.div, { positiveB: true }),
  ...binaryCases('pow', T.pow, { positiveA: true, scalar: 1.7 }),
  ...binaryCases('maximum', T.maximum, { sameShape: true, scalar: 0.1 }),
  ...binaryCases('minimum', T.minimum, { sameShape: true, scalar: 0.1 }),
  where: {
    api: 'where',
    inputs: () => [T.tensor([1, 0, 1, 0, 0, 1], [2, 3]), leaf([2, 3], 1), leaf([3], 2)],
    run: (c, a, b) => T.where(c!, a!, b!),
  },
  reshape: { api: 'reshape', inputs: () => [leaf([2, 3], 1)], run: (x) => T.reshape(x!, [3, 2]) },
  permute: { api: 'permute', inputs: () => [leaf([2, 3, 2], 1)], run: (x) => T.permute(x!, [2, 0, 1]) },
  expand: { api: 'expand', inputs: () => [leaf([3, 1], 1)], run: (x) => T.expand(x!, [2, 3, 4]) },
  slice: {
    api: 'slice',
    inputs: () => [leaf([3, 4], 1)],
    run: (x) => T.slice(x!, [{ start: 1 }, { start: 0, end: 3, step: 2 }]),
  },
  pad: { api: 'pad', inputs: () => [leaf([2, 3], 1)], run: (x) => T.pad(x!, [1, 2], 0.5) },
  flip: { api: 'flip', inputs: () => [leaf([2, 3], 1)], run: (x) => T.flip(x!, [0, 1]) },
  concat: { api: 'concat', inputs: () => [leaf([2, 2], 1), leaf([2, 3], 2)], run: (a, b) => T.concat([a!, b!], 1) },
  split: { api: 'split', inputs: () => [leaf([2, 5], 1)], run: (x) => T.split(x!, [2, 3], 1)[1]! },
  // Axes 0 and 2 of [2, 3, 2] are not adjacent: the reductions take their permuting path.
  sum: { api: 'sum', inputs: () => [leaf([2, 3, 2], 1)], run: (x) => T.sum(x!, [0, 2]) },
  mean: { api: 'mean', inputs: () => [leaf([2, 3, 2], 1)], run: (x) => T.mean(x!, [0, 2], true) },
  max: { api: 'max', inputs: () => [leaf([2, 3, 2], 1)], run: (x) => T.max(x!, [0, 2]) },
  min: { api: 'min', inputs: () => [leaf([2, 3, 2], 1)], run: (x) => T.min(x!, [1]) },
  var: { api: 'variance', inputs: () => [leaf([3, 4], 1)], run: (x) => T.variance(x!, [1]) },
  logsumexp: { api: 'logsumexp', inputs: () => [leaf([3, 4], 1)], run: (x) => T.logsumexp(x!, [1]) },
  matmul: { api: 'matmul', inputs: () => [leaf([2, 3], 1), leaf([3, 4], 2)], run: (a, b) => T.matmul(a!, b!) },
  linear: {
    api: 'linear',
    inputs: () => [leaf([2, 3], 1), leaf([4, 3], 2), leaf([4], 3)],
    run: (x, w, b) => T.linear(x!, w!, b),
  },
  glu: { api: 'glu', inputs: () => [leaf([2, 6, 3], 1)], run: (x) => T.glu(x!, 1) },
  geglu: { api: 'geglu', inputs: () => [leaf([3, 8], 2)], run: (x) => T.geglu(x!) },
  geglu_tanh: { api: 'geglu', inputs: () => [leaf([2, 3, 4], 3)], run: (x) => T.geglu(x!, 2, 'tanh') },
  softmax: { api: 'softmax', inputs: () => [leaf([2, 5], 1)], run: (x) => T.softmax(x!, -1) },
  logsoftmax: { api: 'logSoftmax', inputs: () => [leaf([2, 5], 1)], run: (x) => T.logSoftmax(x!, 0) },
  conv2d: {
    api: 'conv2d',
    inputs: () => [leaf([1, 2, 4, 3], 1), leaf([2, 2, 3, 3], 2), leaf([2], 3)],
    run: (x, w, b) => T.conv2d(x!, w!, b, { padding: 1, stride: [2, 1] }),
  },
  conv_transpose2d: {
    api: 'convTranspose2d',
    inputs: () => [leaf([1, 2, 3, 2], 1), leaf([2, 2, 3, 3], 2), leaf([2], 3)],
    run: (x, w, b) => T.convTranspose2d(x!, w!, b, { stride: 2, padding: 1, outputPadding: 1 }),
  },
  group_norm: {
    api: 'groupNorm',
    inputs: () => [leaf([2, 4, 3], 1), leaf([4], 2), leaf([4], 3)],
    run: (x, w, b) => T.groupNorm(x!, 2, w, b),
    options: { rtol: 3e-2 },
  },
  layer_norm: {
    api: 'layerNorm',
    inputs: () => [leaf([3, 5], 1), leaf([5], 2), leaf([5], 3)],
    run: (x, w, b) => T.layerNorm(x!, [5], w, b),
    options: { rtol: 3e-2 },
  },
  resample2d: {
    api: 'interpolate',
    inputs: () => [leaf([1, 2, 3, 4], 1)],
    run: (x) => T.interpolate(x!, { size: [5, 3], mode: 'bilinear' }),
  },
  max_pool2d: {
    api: 'maxPool2d',
    inputs: () => [leaf([1, 2, 4, 5], 1)],
    run: (x) => T.maxPool2d(x!, { kernelSize: 2, stride: 1, padding: [1, 0] }),
  },
  grid_sample: {
    api: 'gridSample',
    inputs: () => [
      leaf([1, 2, 3, 4], 1),
      fromData(
        gridFor(3, 4, [
          [0.3, 0.4],
          [1.6, 1.3],
          [2.5, 0.7],
          [0.7, 1.6],
          [3.4, 2.3],
          [1.3, 0.6],
        ]),
        [1, 2, 3, 2],
      ),
    ],
    run: (x, g) => T.gridSample(x!, g!, { alignCorners: false }),
  },
  gather: {
    api: 'gather',
    inputs: () => [leaf([3, 4], 1), ints([0, 3, 2, 2, 1, 0], [3, 2])],
    run: (x, i) => T.gather(x!, 1, i!),
  },
  index_select: {
    api: 'indexSelect',
    inputs: () => [leaf([3, 4], 1), ints([2, 0, 2], [3])],
    run: (x, i) => T.indexSelect(x!, 0, i!),
  },
  attention: {
    api: 'attention',
    inputs: () => [leaf([1, 1, 3, 4], 1), leaf([1, 1, 5, 4], 2), leaf([1, 1, 5, 4], 3)],
    run: (q, k, v) => T.attention(q!, k!, v!),
  },
  // Two heads of width 4 read in place from [B, tokens, 8].
  attention_heads: {
    api: 'multiHeadAttention',
    inputs: () => [leaf([1, 3, 8], 1), leaf([1, 5, 8], 2), leaf([1, 5, 8], 3)],
    run: (q, k, v) => T.multiHeadAttention(q!, k!, v!, { heads: 2 }),
  },
  cumsum: { api: 'cumsum', inputs: () => [leaf([2, 4], 1)], run: (x) => T.cumsum(x!, 1) },
  prod: { api: 'prod', inputs: () => [leaf([2, 3], 1, true)], run: (x) => T.prod(x!, [1]) },
  norm: { api: 'norm', inputs: () => [leaf([3, 4], 1)], run: (x) => T.norm(x!, 2, [1]) },
  clone: { api: 'clone', inputs: () => [leaf([2, 3], 1)], run: (x) => T.clone(x!) },
  masked_fill: {
    api: 'maskedFill',
    inputs: () => [leaf([2, 3], 1), T.tensor([1, 0, 0], [3])],
    run: (x, m) => T.maskedFill(x!, m!, 0.5),
  },
  // Distinct indices per row: with duplicates the winning source is unspecified, and so is its gradient.
  scatter: {
    api: 'scatter',
    inputs: () => [leaf([3, 4], 1), ints([0, 3, 2, 1, 1, 0], [3, 2]), leaf([3, 2], 2)],
    run: (x, i, s) => T.scatter(x!, 1, i!, s!),
  },
  scatter_add: {
    api: 'scatterAdd',
    inputs: () => [leaf([3, 4], 1), ints([0, 3, 2, 2, 1, 1], [3, 2]), leaf([3, 2], 2)],
    run: (x, i, s) => T.scatterAdd(x!, 1, i!, s!),
  },
};

/** Registered differentiable ops that the sweep does not check, with the reason. */
export const OP_CASES_EXCLUDED: Record<string, string> = {};
