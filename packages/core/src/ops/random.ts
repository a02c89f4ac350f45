import { type RandomDistribution, randomCounters, randomGrid, randomKernel } from '@leffa-webgpu/kernels-wgsl';
import type { Tensor } from '../tensor/tensor.js';
import { emptyTensor, launch } from '../forward/launch.js';

/**
 * A seeded stream of random numbers (Philox counter-based, like PyTorch's CUDA generator): the same seed
 * gives the same values on every device, and each draw advances the counter by the amount it used.
 */
export class Generator {
  private offset = 0;

  constructor(private seed = 0) {}

  manualSeed(seed: number): this {
    this.seed = seed;
    this.offset = 0;
    return this;
  }

  /** Saved/restored by checkpoints so that resumed training draws the same numbers. */
  getState(): { seed: number; offset: number } {
    return { seed: this.seed, offset: this.offset };
  }

  setState(state: { seed: number; offset: number }): void {
    this.seed = state.seed;
    this.offset = state.offset;
  }

  draw(shape: readonly number[], dist: RandomDistribution, a: number, b: number, op: string): Tensor {
    const out = emptyTensor(shape, 'float32', op);
    const n = out.size;
    launch(
      randomKernel(dist),
      [],
      [out],
      {
        n,
        seedLo: this.seed >>> 0,
        seedHi: Math.floor(this.seed / 2 ** 32) >>> 0,
        offsetLo: this.offset >>> 0,
        offsetHi: Math.floor(this.offset / 2 ** 32) >>> 0,
        a,
        b,
      },
      randomGrid(n),
    );
    this.offset += randomCounters(n);
    return out;
  }
}

export const defaultGenerator = new Generator(0);

/** Reseeds the default generator. */
export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}

export interface RandomOptions {
  generator?: Generator;
}

/** Standard normal values (times std, plus mean). */
export function randn(shape: readonly number[], options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  return (options.generator ?? defaultGenerator).draw(shape, 'normal', options.mean ?? 0, options.std ?? 1, 'randn');
}

/** Uniform values in [low, high). */
export function rand(shape: readonly number[], options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  return (options.generator ?? defaultGenerator).draw(shape, 'uniform', options.low ?? 0, options.high ?? 1, 'rand');
}

/** 1 with probability p (times `scale`), else 0. */
export function bernoulli(
  shape: readonly number[],
  p: number,
  options: RandomOptions & { scale?: number } = {},
): Tensor {
  return (options.generator ?? defaultGenerator).draw(shape, 'bernoulli', p, options.scale ?? 1, 'bernoulli');
}
