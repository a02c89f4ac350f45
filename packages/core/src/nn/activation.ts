import { gelu, leakyRelu, relu, sigmoid, silu, tanh } from '../ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorModule } from './layers.js';
import { Module } from './module.js';

/** A parameter-free activation as a module (for Sequential models). */
abstract class Activation extends Module implements TensorModule {
  protected abstract apply(x: Tensor): Tensor;
  forward(x: Tensor): Tensor {
    return this.apply(x);
  }
}

export class ReLU extends Activation {
  protected apply = relu;
}
export class SiLU extends Activation {
  protected apply = silu;
}
export class Sigmoid extends Activation {
  protected apply = sigmoid;
}
export class Tanh extends Activation {
  protected apply = tanh;
}
export class GELU extends Activation {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  protected apply = (x: Tensor) => gelu(x, this.approximate);
}
export class LeakyReLU extends Activation {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  protected apply = (x: Tensor) => leakyRelu(x, this.negativeSlope);
}
