import { gelu, leakyRelu, relu, sigmoid, silu, tanh } from '../ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorModule } from './layers.js';
import { Module } from './module.js';

/** Parameter-free activation modules, for Sequential models. */
function activation(name: string, f: (x: Tensor) => Tensor) {
  const cls = class extends Module implements TensorModule {
    forward(x: Tensor): Tensor {
      return f(x);
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

export const ReLU = activation('ReLU', relu);
export const SiLU = activation('SiLU', silu);
export const GELU = activation('GELU', (x) => gelu(x));
export const Sigmoid = activation('Sigmoid', sigmoid);
export const Tanh = activation('Tanh', tanh);

export class LeakyReLU extends Module implements TensorModule {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }

  forward(x: Tensor): Tensor {
    return leakyRelu(x, this.negativeSlope);
  }
}
