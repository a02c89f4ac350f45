import { full, ones, zeros } from '../forward/creation.js';
import { type BatchNormOptions, activatedBatchNorm, batchNorm, groupNorm, layerNorm } from '../ops/normalization.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorModule } from './layers.js';
import { Module } from './module.js';

/** GroupNorm(numGroups, numChannels) with weight/bias [C] (ones/zeros). */
export class GroupNorm extends Module implements TensorModule {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly eps: number;

  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    options: { eps?: number; affine?: boolean } = {},
  ) {
    super();
    if (numChannels % numGroups !== 0)
      throw new Error(`GroupNorm: ${numChannels} channels do not split into ${numGroups} groups`);
    this.eps = options.eps ?? 1e-5;
    const affine = options.affine ?? true;
    this.weight = this.addParameter('weight', affine ? ones([numChannels]) : null);
    this.bias = this.addParameter('bias', affine ? zeros([numChannels]) : null);
  }

  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight ?? undefined, this.bias ?? undefined, this.eps);
  }

  /** silu(groupNorm(x)) fused into one kernel. */
  forwardSilu(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight ?? undefined, this.bias ?? undefined, this.eps, 'silu');
  }
}

/** LayerNorm over the trailing `shape` dims with elementwise weight/bias of that shape. */
export class LayerNorm extends Module implements TensorModule {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly eps: number;
  readonly shape: number[];

  constructor(shape: number | readonly number[], options: { eps?: number; elementwiseAffine?: boolean } = {}) {
    super();
    this.shape = typeof shape === 'number' ? [shape] : [...shape];
    this.eps = options.eps ?? 1e-5;
    const affine = options.elementwiseAffine ?? true;
    this.weight = this.addParameter('weight', affine ? ones(this.shape) : null);
    this.bias = this.addParameter('bias', affine ? zeros(this.shape) : null);
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.shape, this.weight ?? undefined, this.bias ?? undefined, this.eps);
  }
}

export interface BatchNormModuleOptions {
  eps?: number;
  /** null: cumulative moving average (SCHP's BN re-estimation). */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

/**
 * BatchNorm2d with PyTorch's buffers (running_mean, running_var, num_batches_tracked) and semantics:
 * batch statistics in training (updating the running ones), running statistics in eval.
 */
export class BatchNorm2d extends Module implements TensorModule {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly running_mean: Tensor | null;
  readonly running_var: Tensor | null;
  readonly num_batches_tracked: Tensor | null;
  readonly eps: number;
  momentum: number | null;
  /** Batches seen, mirrored on the CPU so that the cumulative average needs no readback. */
  protected batches = 0;

  constructor(
    readonly numFeatures: number,
    options: BatchNormModuleOptions = {},
    /** InPlaceABN's official state dicts have no num_batches_tracked. */
    countBatches = true,
  ) {
    super();
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    const affine = options.affine ?? true;
    const track = options.trackRunningStats ?? true;
    this.weight = this.addParameter('weight', affine ? ones([numFeatures]) : null);
    this.bias = this.addParameter('bias', affine ? zeros([numFeatures]) : null);
    this.running_mean = this.addBuffer('running_mean', track ? zeros([numFeatures]) : null);
    this.running_var = this.addBuffer('running_var', track ? ones([numFeatures]) : null);
    this.num_batches_tracked = this.addBuffer('num_batches_tracked', track && countBatches ? zeros([], 'int32') : null);
  }

  /** Sets the batch counter (after loading a state dict whose num_batches_tracked was read back). */
  setBatchesTracked(n: number): void {
    this.batches = n;
  }

  /** Zeroes the running statistics and the counter (SCHP re-estimates them with momentum null). */
  resetRunningStats(): void {
    this.running_mean?.assign(zeros([this.numFeatures]));
    this.running_var?.assign(ones([this.numFeatures]));
    this.num_batches_tracked?.assign(zeros([], 'int32'));
    this.batches = 0;
  }

  /** Options for this call, counting the batch when the running statistics will be updated. */
  protected callOptions(): BatchNormOptions {
    if (this.training && this.running_mean !== null) {
      this.batches++;
      this.num_batches_tracked?.assign(full([], this.batches, 'int32'));
    }
    return {
      training: this.training || this.running_mean === null,
      momentum: this.momentum,
      eps: this.eps,
      numBatchesTracked: this.batches,
    };
  }

  forward(x: Tensor): Tensor {
    return batchNorm(
      x,
      this.running_mean,
      this.running_var,
      this.weight ?? undefined,
      this.bias ?? undefined,
      this.callOptions(),
    );
  }
}

/**
 * InPlaceABN as SCHP uses it: BatchNorm with scale |weight| + eps, then LeakyReLU(slope). State-dict keys
 * weight, bias, running_mean, running_var, as in the official checkpoints.
 */
export class InPlaceABN extends BatchNorm2d {
  readonly slope: number;

  constructor(numFeatures: number, options: BatchNormModuleOptions & { slope?: number } = {}) {
    super(numFeatures, options, false);
    this.slope = options.slope ?? 0.01;
  }

  override forward(x: Tensor): Tensor {
    if (!this.weight || !this.bias) throw new Error('InPlaceABN: needs affine parameters');
    return activatedBatchNorm(x, this.running_mean, this.running_var, this.weight, this.bias, {
      ...this.callOptions(),
      slope: this.slope,
    });
  }
}
