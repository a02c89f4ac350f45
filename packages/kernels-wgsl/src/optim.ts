import {
  cachedKernel,
  fields,
  type FlatEntry,
  flatKernel,
  type Grid,
  grid1d,
  gridGroups,
  type Kernel,
  makeKernel,
  readOnly,
  readWrite,
} from './kernel.js';

/*
 * Training-loop kernels: fused optimizer steps that update a parameter and its state in place (Adam: several
 * parameters per dispatch), the exponential moving average of weights, and gradient-norm clipping.
 *
 * Everything that changes between steps (learning rate, bias corrections, decay) is a uniform, so a
 * schedule never triggers a pipeline compile. The arithmetic follows PyTorch's order of operations
 * (torch.optim.SGD / AdamW, torch.nn.utils.clip_grad_norm_) so results agree to float32 rounding.
 */

const WG = 256;
/**
 * Elements per invocation, strided by the workgroup size so that neighbouring invocations still touch
 * neighbouring words. Fewer, longer invocations amortise per-invocation overhead (2-3x on lavapipe).
 */
const ITEMS = 16;
const TILE = WG * ITEMS;

/** A kernel whose body runs once per element `i` of ITEMS elements per invocation, strided by WG. */
const itemsKernel = (spec: Omit<Parameters<typeof flatKernel>[0], keyof FlatEntry>): Kernel =>
  flatKernel({
    ...spec,
    workgroupSize: WG,
    stride: TILE,
    index: 'base',
    bound: null,
    body: /* wgsl */ `
  for (var k = 0u; k < ${ITEMS}u; k++) {
    let i = base + k * ${WG}u;
    if (i >= params.n) { break; }
${spec.body}
  }`,
  });

/** Launch geometry of the optimizer, EMA and scaling kernels (each workgroup covers WG x ITEMS elements). */
export const optimGrid = (n: number): Grid => grid1d(n, TILE);

/** The most tensors one multi-tensor dispatch (gradient norms, scaling, Adam) covers: the size of its uniform arrays. */
export const MULTI_TENSORS = 16;
const MULTI_UNIFORMS = fields({ array: 'u32', length: MULTI_TENSORS }, 'n', 'first');

/** Workgroups a multi-tensor optimizer kernel (scaling, Adam) uses for a tensor of n elements (or vec4s). */
export const optimGroups = (n: number) => Math.max(1, Math.ceil(n / TILE));

/**
 * Body of a kernel over `count` tensors in one dispatch (tensor t has n[t] elements): tensor t owns the
 * workgroups from first[t] on (a uniform branch per workgroup). Sets `n` and `local`, the workgroup's index
 * within its tensor, and runs `perTensor(t)` for it.
 */
const multiTensor = (count: number, perTensor: (t: number) => string) => `
  var k = 0u;
  for (var j = 1u; j < ${count}u; j++) { if (group >= params.first[j / 4u][j % 4u]) { k = j; } }
  let n = params.n[k / 4u][k % 4u];
  let local = group - params.first[k / 4u][k % 4u];
  switch k {
    ${Array.from({ length: count }, (_, t) => `case ${t}u: { ${perTensor(t)} }`).join('\n    ')}
    default: {}
  }`;

/** Per tensor of a multi-tensor kernel: `elementBody(t)` for element i of ITEMS per invocation, strided by WG. */
const itemsLoop = (elementBody: (t: number) => string) => (t: number) =>
  `let base = local * ${TILE}u + lid;
      for (var it = 0u; it < ${ITEMS}u; it++) {
        let i = base + it * ${WG}u;
        if (i >= n) { break; }
        ${elementBody(t)}
      }`;

/**
 * A multi-tensor kernel over `count` tensors whose body runs `element(t)` for each element i of tensor t
 * (ITEMS per invocation, strided by WG); the uniforms get the per-tensor sizes and first workgroups appended.
 * Grid: gridGroups(total of optimGroups).
 */
const multiItemsKernel = (spec: {
  key: string;
  buffers: Parameters<typeof flatKernel>[0]['buffers'];
  uniforms: Parameters<typeof flatKernel>[0]['uniforms'];
  count: number;
  element: (t: number) => string;
}): Kernel =>
  flatKernel({
    key: spec.key,
    buffers: spec.buffers,
    uniforms: [...spec.uniforms, ...MULTI_UNIFORMS],
    workgroupSize: WG,
    per: 'workgroup',
    index: 'group',
    bound: null,
    body: multiTensor(spec.count, itemsLoop(spec.element)),
  });

/** The storage element type of a multi-tensor kernel's tensors. */
const elementType = (vec4: boolean) => (vec4 ? 'vec4<f32>' : 'f32');

/**
 * name0..name{count-1}: f32, or vec4<f32> for the vec4 variants (four elements per item: a quarter of the per-lane
 * load loops on CPUs; the caller's tensors have sizes divisible by 4 and n counts vec4s).
 */
const multiBuffers = (count: number, name: string, access: 'read' | 'read_write', vec4 = false) =>
  Array.from({ length: count }, (_, t) => (access === 'read' ? readOnly : readWrite)(`${name}${t}`, elementType(vec4)));

/**
 * SGD with optional weight decay and momentum (PyTorch's formulation):
 *   d = g + wd * p;  buf = first ? d : momentum * buf + (1 - dampening) * d;  d = nesterov ? d + momentum * buf : buf
 *   p -= lr * d
 * Bindings: grad, param (read_write), [momentum buffer (read_write)]. `first` = 1 on the step that creates
 * the buffer (PyTorch clones d there instead of decaying a zero buffer).
 */
export const sgdKernel = cachedKernel((momentum: boolean, nesterov: boolean): Kernel => {
  if (nesterov && !momentum) throw new Error('sgdKernel: nesterov needs the momentum variant');
  const update = momentum
    ? `
  var b = d;
  if (params.first == 0u) { b = buf[i] * params.momentum + params.oneMinusDampening * d; }
  buf[i] = b;
  ${nesterov ? 'd = d + params.momentum * b;' : 'd = b;'}`
    : '';
  return itemsKernel({
    key: `optim:sgd:${momentum}:${nesterov}`,
    buffers: [readOnly('grad'), readWrite('param'), ...(momentum ? [readWrite('buf')] : [])],
    uniforms: [...fields('u32', 'n', 'first'), ...fields('f32', 'lr', 'weightDecay', 'momentum', 'oneMinusDampening')],
    body: /* wgsl */ `
  let p = param[i];
  var d = grad[i];
  if (params.weightDecay != 0.0) { d = d + params.weightDecay * p; }${update}
  param[i] = p - params.lr * d;`,
  });
});

/**
 * Adam with optional AMSGrad, PyTorch's formulation, with either kind of weight decay:
 *   'decoupled' (torch.optim.AdamW): p *= decay (= 1 - lr * wd) before the update;
 *   'l2' (torch.optim.Adam): g += wd * p before the moments.
 *   m = beta1 * m + (1 - beta1) g;  v = beta2 * v + (1 - beta2) g^2;  [vmax = max(vmax, v)]
 *   p -= stepSize * m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps),  stepSize = lr / (1 - beta1^t)
 * The bias corrections are computed on the CPU in float64 per step and passed as uniforms.
 * `count` parameters (with the same hyperparameters and step) per dispatch. Bindings: grad0..grad{count-1}, then
 * read_write for each parameter: param, exp_avg, exp_avg_sq, [max_exp_avg_sq]. Grid: gridGroups(total of optimGroups).
 * `vec4`: four elements per item (see multiBuffers).
 */
export const adamKernel = cachedKernel(
  (amsgrad: boolean, weightDecay: 'decoupled' | 'l2', count: number = 1, vec4: boolean = false): Kernel => {
    const decoupled = weightDecay === 'decoupled';
    const state = ['param', 'exp_avg', 'exp_avg_sq', ...(amsgrad ? ['max_exp_avg_sq'] : [])];
    return multiItemsKernel({
      key: `optim:adam:${weightDecay}:${amsgrad}:${count}${vec4 ? ':vec4' : ''}`,
      buffers: [
        ...multiBuffers(count, 'grad', 'read', vec4),
        ...Array.from({ length: count }, (_, t) =>
          state.map((name) => readWrite(`${name}${t}`, elementType(vec4))),
        ).flat(),
      ],
      uniforms: [
        // 'decoupled': the factor 1 - lr * wd applied to the parameter; 'l2': wd, the gradient's L2 coefficient.
        ...fields(
          'f32',
          'decay',
          'beta1',
          'oneMinusBeta1',
          'beta2',
          'oneMinusBeta2',
          'stepSize',
          'biasCorrection2Sqrt',
          'eps',
        ),
      ],
      count,
      element: (t) => /* wgsl */ `${
        decoupled
          ? `let g = grad${t}[i];
        let p = param${t}[i] * params.decay;`
          : `let p = param${t}[i];
        let g = grad${t}[i] + params.decay * p;`
      }
        let m = exp_avg${t}[i] * params.beta1 + params.oneMinusBeta1 * g;
        let v = exp_avg_sq${t}[i] * params.beta2 + params.oneMinusBeta2 * g * g;
        exp_avg${t}[i] = m;
        exp_avg_sq${t}[i] = v;
        ${
          amsgrad
            ? `let vhat = max(max_exp_avg_sq${t}[i], v);
        max_exp_avg_sq${t}[i] = vhat;`
            : 'let vhat = v;'
        }
        let denom = sqrt(vhat) / params.biasCorrection2Sqrt + params.eps;
        param${t}[i] = p - params.stepSize * (m / denom);`,
    });
  },
);

/**
 * Exponential moving average: shadow <- lerp(shadow, param, weight) with weight = 1 - decay, in PyTorch's
 * two-sided lerp form, so weight 1 reproduces the parameter exactly (the copy before averaging starts).
 * `count` tensors per dispatch. Bindings: param0..param{count-1}, then shadow0..shadow{count-1} (read_write).
 * Grid: gridGroups(total of optimGroups). `vec4` as in adamKernel.
 */
export const emaKernel = cachedKernel(
  (count: number = 1, vec4: boolean = false): Kernel =>
    multiItemsKernel({
      key: `optim:ema:${count}${vec4 ? ':vec4' : ''}`,
      buffers: [...multiBuffers(count, 'param', 'read', vec4), ...multiBuffers(count, 'shadow', 'read_write', vec4)],
      uniforms: [{ name: 'weight', type: 'f32' }],
      count,
      element: (t) => /* wgsl */ `let s = shadow${t}[i];
        let p = param${t}[i];
        let w = params.weight;
        shadow${t}[i] = select(p - (p - s) * (1.0 - w), s + w * (p - s), w < 0.5);`,
    }),
);

// ---------------------------------------------------------------- gradient-norm clipping

/** 'inf' is the max-abs norm; 'l1', 'l2' specialise p = 1, 2; 'lp' uses the uniform exponent `p`. */
export type GradNormKind = 'l1' | 'l2' | 'lp' | 'inf';

/** Per-element contribution and how partial results combine. */
const NORM: Record<GradNormKind, { term: string; init: string; combine: (a: string, b: string) => string }> = {
  l1: { term: 'abs(x)', init: '0.0', combine: (a, b) => `${a} + ${b}` },
  l2: { term: 'x * x', init: '0.0', combine: (a, b) => `${a} + ${b}` },
  lp: { term: 'powOrZero(abs(x), params.p)', init: '0.0', combine: (a, b) => `${a} + ${b}` },
  inf: { term: 'abs(x)', init: '0.0', combine: (a, b) => `max(${a}, ${b})` },
};

const NORM_WG = 256;
/**
 * Elements each invocation folds before the workgroup's tree reduction. Barriers are what a reduction
 * workgroup costs on lavapipe (tens of microseconds each), so every workgroup takes a long tile.
 */
const NORM_ITEMS = 128;
const NORM_TILE = NORM_WG * NORM_ITEMS;

// WGSL leaves pow(0, y) undefined; norms need 0.
const POW_WGSL = 'fn powOrZero(x: f32, y: f32) -> f32 { return select(pow(x, y), 0.0, x == 0.0); }';

const treeReduce = (combine: (a: string, b: string) => string) => `
  s_acc[lid] = acc;
  workgroupBarrier();
  for (var stride = ${NORM_WG / 2}u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) { s_acc[lid] = ${combine('s_acc[lid]', 's_acc[lid + stride]')}; }
    workgroupBarrier();
  }`;

/** Workgroups (= partial results) `gradNormPartialKernel` uses for a gradient of n elements. */
export const gradNormGroups = (n: number) => Math.max(1, Math.ceil(n / NORM_TILE));

/**
 * Stage 1: each workgroup folds one tile of a gradient (sum of |x|^p, or max |x|) into partials[offset + workgroup],
 * for `count` gradients in one dispatch (gradient k's tiles from workgroup first[k] on, so the partials come in
 * gradient order). Bindings: x0..x{count-1}, partials (read_write). Grid: gridGroups(total of gradNormGroups).
 */
export const gradNormPartialKernel = cachedKernel((kind: GradNormKind, count: number = 1): Kernel => {
  const c = NORM[kind];
  return flatKernel({
    key: `optim:gradnorm-partial:${kind}:${count}`,
    buffers: [...multiBuffers(count, 'x', 'read'), readWrite('partials')],
    uniforms: [{ name: 'offset', type: 'u32' }, { name: 'p', type: 'f32' }, ...MULTI_UNIFORMS],
    workgroupSize: NORM_WG,
    per: 'workgroup',
    index: 'group',
    bound: null,
    helpers: /* wgsl */ `
${POW_WGSL}
var<workgroup> s_acc: array<f32, ${NORM_WG}>;`,
    body: /* wgsl */ `
  var acc: f32 = ${c.init};
  ${multiTensor(
    count,
    (t) => `let base = local * ${NORM_TILE}u + lid;
      for (var it = 0u; it < ${NORM_ITEMS}u; it++) {
        let i = base + it * ${NORM_WG}u;
        if (i >= n) { break; }
        let x = x${t}[i];
        acc = ${c.combine('acc', c.term)};
      }`,
  )}
  ${treeReduce(c.combine)}
  if (lid == 0u) { partials[params.offset + group] = s_acc[0]; }`,
  });
});

/**
 * Stage 2 (one workgroup): combines `count` partials into the total norm and the clipping coefficient
 * min(1, maxNorm / (norm + 1e-6)), both left on the GPU. Bindings: partials, norm (read_write, 1 element),
 * coef (read_write, 1 element). Grid: [1, 1, 1].
 */
export const gradNormFinalizeKernel = cachedKernel((kind: GradNormKind): Kernel => {
  const c = NORM[kind];
  const root =
    kind === 'l1' || kind === 'inf'
      ? 's_acc[0]'
      : kind === 'l2'
        ? 'sqrt(s_acc[0])'
        : 'powOrZero(s_acc[0], 1.0 / params.p)';
  return makeKernel({
    key: `optim:gradnorm-finalize:${kind}`,
    buffers: [readOnly('partials'), readWrite('norm'), readWrite('coef')],
    uniforms: [{ name: 'count', type: 'u32' }, ...fields('f32', 'maxNorm', 'p')],
    workgroupSize: [NORM_WG, 1, 1],
    body: /* wgsl */ `
${POW_WGSL}
var<workgroup> s_acc: array<f32, ${NORM_WG}>;
@compute @workgroup_size(${NORM_WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc: f32 = ${c.init};
  for (var i = lid; i < params.count; i += ${NORM_WG}u) { acc = ${c.combine('acc', 'partials[i]')}; }
  ${treeReduce(c.combine)}
  if (lid == 0u) {
    let total = ${root};
    norm[0] = total;
    coef[0] = min(params.maxNorm / (total + 1e-6), 1.0);
  }
}`,
  });
});

/**
 * x[i] *= coef[0], in place, with the factor read from the GPU (no readback), for `count` tensors in one dispatch.
 * Bindings: coef, x0..x{count-1} (read_write, distinct buffers). Grid: gridGroups(total of optimGroups). `vec4` as
 * in multiBuffers (coef stays one f32).
 */
export const scaleByKernel = cachedKernel(
  (count: number = 1, vec4: boolean = false): Kernel =>
    multiItemsKernel({
      key: `optim:scale-by:${count}${vec4 ? ':vec4' : ''}`,
      buffers: [readOnly('coef'), ...multiBuffers(count, 'x', 'read_write', vec4)],
      uniforms: [],
      count,
      element: (t) => `x${t}[i] = x${t}[i] * coef[0];`,
    }),
);
