import { adamKernel, gridGroups, optimGroups } from '@leffa-webgpu/kernels-wgsl';
import { zeros } from '../forward/creation.js';
import { chunks, multiLayout, splitByVec4, tensorsPerDispatch } from './multi-tensor.js';
import { launch } from '../forward/launch.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  type BaseHyper,
  Optimizer,
  type ParamGroup,
  type ParamState,
  type ParamsInput,
  checkLr,
  checkRange,
} from './optimizer.js';

export interface AdamOptions extends BaseHyper {
  betas: [number, number];
  eps: number;
  amsgrad: boolean;
}
export type AdamWOptions = AdamOptions;

/**
 * The Adam family: bias-corrected moments, optionally with AMSGrad's running maximum of the second moment,
 * and one of two kinds of weight decay (see `adamKernel`). A fused kernel updates parameters and their moments in
 * place, several parameters with the same hyperparameters and step per dispatch; state names and step counts as
 * PyTorch's.
 */
abstract class AdamFamily extends Optimizer<AdamOptions> {
  constructor(
    name: string,
    private readonly decayKind: 'decoupled' | 'l2',
    params: ParamsInput<AdamOptions>,
    options: Partial<AdamOptions> & { lr: number },
    defaultWeightDecay: number,
  ) {
    const defaults: AdamOptions = {
      lr: options?.lr,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: defaultWeightDecay,
      amsgrad: false,
    };
    for (const key of Object.keys(options ?? {})) {
      if (!(key in defaults))
        throw new Error(`${name}: unknown option '${key}' (expected one of ${Object.keys(defaults).join(', ')})`);
    }
    super(name, params, { ...defaults, ...options }, ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq']);
  }

  protected checkHyper(h: AdamOptions, where: string): void {
    checkLr(where, h.lr);
    if (!Array.isArray(h.betas) || h.betas.length !== 2)
      throw new Error(`${where}: betas must be a pair [beta1, beta2], got ${String(h.betas)}`);
    checkRange(where, 'beta1', h.betas[0], 0, 1, false);
    checkRange(where, 'beta2', h.betas[1], 0, 1, false);
    checkRange(where, 'eps', h.eps, 0, Infinity, false);
    checkRange(where, 'weightDecay', h.weightDecay, 0, Infinity, false);
    if (typeof h.amsgrad !== 'boolean')
      throw new Error(`${where}: amsgrad must be a boolean, got ${String(h.amsgrad)}`);
  }

  protected update(param: Tensor, grad: Tensor, group: ParamGroup<AdamOptions>, state: ParamState): void {
    if (param.size === 0) return;
    const s = state.buffers;
    const expAvg = s.exp_avg ?? this.addState(state, 'exp_avg', zeros(param.shape));
    const expAvgSq = s.exp_avg_sq ?? this.addState(state, 'exp_avg_sq', zeros(param.shape));
    const maxSq = group.amsgrad
      ? (s.max_exp_avg_sq ?? this.addState(state, 'max_exp_avg_sq', zeros(param.shape)))
      : null;
    const [beta1, beta2] = group.betas;
    // Bias corrections in float64, as PyTorch computes them on the host.
    const t = state.step;
    const uniforms = {
      decay: this.decayKind === 'decoupled' ? 1 - group.lr * group.weightDecay : group.weightDecay,
      beta1,
      oneMinusBeta1: 1 - beta1,
      beta2,
      oneMinusBeta2: 1 - beta2,
      stepSize: group.lr / (1 - beta1 ** t),
      biasCorrection2Sqrt: Math.sqrt(1 - beta2 ** t),
      eps: group.eps,
    };
    const key = `${group.amsgrad}:${Object.values(uniforms).join(':')}`;
    let batch = this.pending.get(key);
    if (!batch) this.pending.set(key, (batch = { amsgrad: group.amsgrad, uniforms, grads: [], states: [] }));
    batch.grads.push(grad);
    batch.states.push(maxSq ? [param, expAvg, expAvgSq, maxSq] : [param, expAvg, expAvgSq]);
  }

  /** Parameters collected by `update`, grouped by identical uniforms, as many per dispatch as the stage binds. */
  private readonly pending = new Map<
    string,
    { amsgrad: boolean; uniforms: Record<string, number>; grads: Tensor[]; states: Tensor[][] }
  >();

  protected override flush(): void {
    for (const { amsgrad, uniforms, grads, states } of this.pending.values()) {
      // A gradient and the parameter's state tensors each.
      const size = tensorsPerDispatch(amsgrad ? 5 : 4);
      const params = grads.map((_, i) => i);
      for (const { vec4, items } of splitByVec4(params, (i) => [grads[i]!, ...states[i]!])) {
        for (const part of chunks(items, size)) {
          const g = part.map((i) => grads[i]!);
          const { n, first, groups } = multiLayout(g, optimGroups, vec4);
          launch(
            adamKernel(amsgrad, this.decayKind, g.length, vec4),
            g,
            part.flatMap((i) => states[i]!),
            { ...uniforms, n, first },
            gridGroups(groups),
          );
        }
      }
    }
    this.pending.clear();
  }
}

/** torch.optim.Adam: L2-style weight decay (g += wd * p before the moments; default 0). */
export class Adam extends AdamFamily {
  constructor(params: ParamsInput<AdamOptions>, options: Partial<AdamOptions> & { lr: number }) {
    super('Adam', 'l2', params, options, 0);
  }
}

/** torch.optim.AdamW: decoupled weight decay (Loshchilov & Hutter), p *= 1 - lr * wd before the update (default 1e-2). */
export class AdamW extends AdamFamily {
  constructor(params: ParamsInput<AdamWOptions>, options: Partial<AdamWOptions> & { lr: number }) {
    super('AdamW', 'decoupled', params, options, 1e-2);
  }
}
