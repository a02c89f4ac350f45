import { optimGrid, sgdKernel } from '@leffa-webgpu/kernels-wgsl';
import { emptyTensor, launch } from '../forward/launch.js';
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

export interface SGDOptions extends BaseHyper {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

/**
 * Stochastic gradient descent with momentum, dampening, L2 weight decay and Nesterov momentum, matching
 * torch.optim.SGD: each step is one fused kernel per parameter that updates it (and its momentum buffer)
 * in place.
 */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ParamsInput<SGDOptions>, options: Partial<SGDOptions> & { lr: number }) {
    const defaults: SGDOptions = { lr: options?.lr, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };
    for (const key of Object.keys(options ?? {})) {
      if (!(key in defaults))
        throw new Error(`SGD: unknown option '${key}' (expected one of ${Object.keys(defaults).join(', ')})`);
    }
    super('SGD', params, { ...defaults, ...options }, ['momentum_buffer']);
  }

  protected checkHyper(h: SGDOptions, where: string): void {
    checkLr(where, h.lr);
    checkRange(where, 'momentum', h.momentum, 0, Infinity, false);
    checkRange(where, 'dampening', h.dampening, -Infinity, Infinity, false);
    checkRange(where, 'weightDecay', h.weightDecay, 0, Infinity, false);
    if (typeof h.nesterov !== 'boolean')
      throw new Error(`${where}: nesterov must be a boolean, got ${String(h.nesterov)}`);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
      throw new Error(
        `${where}: Nesterov momentum needs momentum > 0 and dampening = 0 (got momentum ${h.momentum}, dampening ${h.dampening})`,
      );
    }
  }

  protected update(param: Tensor, grad: Tensor, group: ParamGroup<SGDOptions>, state: ParamState): void {
    if (param.size === 0) return;
    const useMomentum = group.momentum !== 0;
    let buf = state.buffers.momentum_buffer;
    const first = useMomentum && !buf;
    if (first) buf = this.addState(state, 'momentum_buffer', emptyTensor(param.shape, 'float32', 'SGD'));
    launch(
      sgdKernel(useMomentum, group.nesterov),
      [grad],
      useMomentum ? [param, buf!] : [param],
      {
        n: param.size,
        first: first ? 1 : 0,
        lr: group.lr,
        weightDecay: group.weightDecay,
        momentum: group.momentum,
        oneMinusDampening: 1 - group.dampening,
      },
      optimGrid(param.size),
    );
  }
}
