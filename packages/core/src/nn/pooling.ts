import { type MaxPool2dOptions, maxPool2d } from '../ops/resample.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorModule } from './layers.js';
import { Module } from './module.js';

/** torch.nn.MaxPool2d: `new MaxPool2d(3, { stride: 2, padding: 1 })` (stride defaults to the kernel size). */
export class MaxPool2d extends Module implements TensorModule {
  readonly options: MaxPool2dOptions;

  constructor(kernelSize: MaxPool2dOptions['kernelSize'], options: Omit<MaxPool2dOptions, 'kernelSize'> = {}) {
    super();
    this.options = { ...options, kernelSize };
  }

  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.options);
  }
}
