import { cachedKernel, fields, flatKernel, grid1d, type Kernel, readOnly, readWrite } from './kernel.js';
import { GELU_WGSL, MATH_WGSL } from './elementwise.js';

/** The gate's activation of a gated linear unit: GLU's sigmoid, GEGLU's exact GELU or its tanh approximation. */
export type GateActivation = 'sigmoid' | 'gelu' | 'gelu_tanh';

/** WGSL of act(u) and act'(u) for each gate. */
const GATES: Record<GateActivation, { act: string; grad: string }> = {
  sigmoid: { act: 'sigmoid_(u)', grad: 'sigmoid_(u) * (1.0 - sigmoid_(u))' },
  gelu: { act: GELU_WGSL.erf.value('u'), grad: GELU_WGSL.erf.grad('u') },
  gelu_tanh: { act: GELU_WGSL.tanh.value('u'), grad: GELU_WGSL.tanh.grad('u') },
};

export interface GatedSpec {
  gate: GateActivation;
  /** false: out = value * act(gate); true: the gradient of the input from the output's gradient. */
  backward: boolean;
  /** Four outputs per invocation (the half's run must be a multiple of 4). */
  vec4: boolean;
}

const WG = 256;

/**
 * A gated linear unit over a split axis: the input holds, per outer index, a run of `run` values (the first
 * half, "value") followed by `run` more (the second half, "gate"); output element (o, j) is
 * value[o, j] * act(gate[o, j]). The backward kernel writes both halves of the input's gradient from one
 * invocation per output element, so one dispatch replaces the split, the activation, the product and the
 * concatenation of their gradients. `n` and `run` count vec4s when `vec4` is set.
 */
export const gatedKernel = cachedKernel(({ gate, backward, vec4 }: GatedSpec): Kernel => {
  const { act, grad } = GATES[gate];
  const type = vec4 ? 'vec4<f32>' : 'f32';
  // One lane's arithmetic on scalars v (value), u (gate) and, backward, dy (the output's gradient).
  const lanes = (stmt: (k: string) => string) =>
    vec4 ? [0, 1, 2, 3].map((k) => `  { ${stmt(`[${k}]`)} }`).join('\n') : `  { ${stmt('')} }`;
  const index = /* wgsl */ `
  let o = i / params.run;
  let vi = o * 2u * params.run + (i - o * params.run);
  let gi = vi + params.run;`;
  const body = backward
    ? /* wgsl */ `${index}
  let xv = x[vi];
  let xu = x[gi];
  let g = dy_all[i];
  var dv: ${type};
  var du: ${type};
${lanes((k) => `let v = xv${k}; let u = xu${k}; let dy = g${k}; dv${k} = dy * (${act}); du${k} = dy * v * (${grad});`)}
  dx[vi] = dv;
  dx[gi] = du;`
    : /* wgsl */ `${index}
  let xv = x[vi];
  let xu = x[gi];
  var r: ${type};
${lanes((k) => `let v = xv${k}; let u = xu${k}; r${k} = v * (${act});`)}
  out[i] = r;`;
  return flatKernel({
    key: `gated:${gate}:${backward ? 'bwd' : 'fwd'}:${vec4 ? 'vec4' : 'scalar'}`,
    buffers: backward
      ? [readOnly('dy_all', type), readOnly('x', type), readWrite('dx', type)]
      : [readOnly('x', type), readWrite('out', type)],
    uniforms: fields('u32', 'n', 'run'),
    workgroupSize: WG,
    helpers: MATH_WGSL,
    body,
  });
});

export const gatedGrid = (n: number) => grid1d(n, WG);
