import { adamwKernel, optimGrid } from '@leffa-webgpu/kernels-wgsl';
import { zeros } from '../ops/creation.js';
import { launch } from '../ops/launch.js';
import type { Tensor } from '../tensor/tensor.js';
import { type BaseHyper, Optimizer, type ParamGroup, type ParamState, type ParamsInput, checkLr, checkRange } from './optimizer.js';

export interface AdamWOptions extends BaseHyper {
  betas: [number, number];
  eps: number;
  amsgrad: boolean;
}

/**
 * Adam with decoupled weight decay (Loshchilov & Hutter), matching torch.optim.AdamW: p *= 1 - lr * wd,
 * then the bias-corrected Adam update, optionally with AMSGrad's running maximum of the second moment.
 * One fused kernel per parameter and step updates the parameter and its moments in place.
 */
export class AdamW extends Optimizer<AdamWOptions> {
  constructor(params: ParamsInput<AdamWOptions>, options: Partial<AdamWOptions> & { lr: number }) {
    const defaults: AdamWOptions = { lr: options?.lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false };
    for (const key of Object.keys(options ?? {})) {
      if (!(key in defaults)) throw new Error(`AdamW: unknown option '${key}' (expected one of ${Object.keys(defaults).join(', ')})`);
    }
    super('AdamW', params, { ...defaults, ...options }, ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq']);
  }

  protected checkHyper(h: AdamWOptions, where: string): void {
    checkLr(where, h.lr);
    if (!Array.isArray(h.betas) || h.betas.length !== 2) throw new Error(`${where}: betas must be a pair [beta1, beta2], got ${String(h.betas)}`);
    checkRange(where, 'beta1', h.betas[0], 0, 1, false);
    checkRange(where, 'beta2', h.betas[1], 0, 1, false);
    checkRange(where, 'eps', h.eps, 0, Infinity, false);
    checkRange(where, 'weightDecay', h.weightDecay, 0, Infinity, false);
    if (typeof h.amsgrad !== 'boolean') throw new Error(`${where}: amsgrad must be a boolean, got ${String(h.amsgrad)}`);
  }

  protected update(param: Tensor, grad: Tensor, group: ParamGroup<AdamWOptions>, state: ParamState): void {
    if (param.size === 0) return;
    const s = state.buffers;
    const expAvg = s.exp_avg ?? this.addState(state, 'exp_avg', zeros(param.shape));
    const expAvgSq = s.exp_avg_sq ?? this.addState(state, 'exp_avg_sq', zeros(param.shape));
    const maxSq = group.amsgrad ? (s.max_exp_avg_sq ?? this.addState(state, 'max_exp_avg_sq', zeros(param.shape))) : null;
    const [beta1, beta2] = group.betas;
    // Bias corrections in float64, as PyTorch computes them on the host.
    const t = state.step;
    const biasCorrection1 = 1 - beta1 ** t;
    const biasCorrection2 = 1 - beta2 ** t;
    launch(
      adamwKernel(group.amsgrad),
      [grad],
      maxSq ? [param, expAvg, expAvgSq, maxSq] : [param, expAvg, expAvgSq],
      {
        n: param.size,
        decay: 1 - group.lr * group.weightDecay,
        beta1,
        oneMinusBeta1: 1 - beta1,
        beta2,
        oneMinusBeta2: 1 - beta2,
        stepSize: group.lr / biasCorrection1,
        biasCorrection2Sqrt: Math.sqrt(biasCorrection2),
        eps: group.eps,
      },
      optimGrid(param.size),
    );
  }
}
