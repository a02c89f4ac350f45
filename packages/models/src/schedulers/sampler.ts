import * as T from '@leffa-webgpu/core';
import { type NoiseScheduleConfig, NoiseSchedule, type PredictionType } from './noise-schedule.js';

export interface StepOptions {
  /** Source of the injected noise. */
  generator?: T.Generator;
  /** Explicit noise (same shape as the sample) instead of a draw, for reproducing a reference run. */
  noise?: T.Tensor;
}

export interface StepResult {
  prevSample: T.Tensor;
  predOriginalSample: T.Tensor;
}

/**
 * x0 and epsilon from a model output, for each prediction type (diffusers' formulas). At alpha_bar = 0 (the
 * last timestep of a zero-terminal-SNR schedule) x_t is pure noise: v and x0 predictions still give both, but an
 * epsilon prediction says nothing about x0 (diffusers divides by sqrt(alpha_bar) = 0 and returns inf/NaN), so
 * that case is an error.
 */
export function splitPrediction(
  type: PredictionType,
  output: T.Tensor,
  sample: T.Tensor,
  alphaBar: number,
): { x0: T.Tensor; eps: T.Tensor } {
  if (type === 'epsilon' && !(alphaBar > 0)) {
    throw new Error(
      `scheduler: alpha_bar = ${alphaBar} (the terminal step of a zero-terminal-SNR schedule): an epsilon prediction does not determine x0 there ` +
        '(diffusers returns inf/NaN); start sampling below the last training timestep (e.g. leading spacing) or use v_prediction',
    );
  }
  const a = Math.sqrt(alphaBar);
  const b = Math.sqrt(1 - alphaBar);
  switch (type) {
    case 'epsilon':
      return { x0: T.map('scheduler', '(a - alpha * b) / beta', [sample, output], b, a), eps: output };
    case 'sample':
      return { x0: output, eps: T.map('scheduler', '(a - alpha * b) / beta', [sample, output], a, b) };
    case 'v_prediction':
      return {
        x0: T.map('scheduler', 'alpha * a - beta * b', [sample, output], a, b),
        eps: T.map('scheduler', 'alpha * b + beta * a', [sample, output], a, b),
      };
  }
}

/**
 * What DDPM and DDIM share: the noise schedule, the inference timesteps and the forward process
 * q(x_t | x_0) = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.
 */
export abstract class Sampler {
  readonly schedule: NoiseSchedule;
  timesteps: number[] = [];
  numInferenceSteps = 0;
  /** Scale of the initial noise (1 for these samplers, kept for pipelines written against diffusers). */
  readonly initNoiseSigma = 1;

  constructor(readonly config: NoiseScheduleConfig) {
    this.schedule = new NoiseSchedule(config);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = this.schedule.inferenceTimesteps(numInferenceSteps);
    this.numInferenceSteps = numInferenceSteps;
  }

  /** The timestep the sampler moves to from t (negative at the end). */
  previousTimestep(t: number): number {
    if (this.numInferenceSteps === 0) throw new Error('step: call setTimesteps() first');
    return t - Math.floor(this.schedule.numTrainTimesteps / this.numInferenceSteps);
  }

  /**
   * Noises clean samples at per-sample timesteps (one per batch entry, or one for all):
   * sqrt(abar_t) x0 + sqrt(1 - abar_t) noise.
   */
  addNoise(x0: T.Tensor, noise: T.Tensor, timesteps: number | readonly number[]): T.Tensor {
    const list = typeof timesteps === 'number' ? [timesteps] : timesteps;
    if (list.length !== 1 && list.length !== x0.shape[0]) {
      throw new Error(`addNoise: ${list.length} timesteps for a batch of ${x0.shape[0]}`);
    }
    const bshape = [list.length, ...x0.shape.slice(1).map(() => 1)];
    return T.tidy(() => {
      const a = T.tensor(
        list.map((t) => Math.sqrt(this.schedule.alphaBar(t))),
        bshape,
      );
      const b = T.tensor(
        list.map((t) => Math.sqrt(1 - this.schedule.alphaBar(t))),
        bshape,
      );
      return T.add(T.mul(x0, a), T.mul(noise, b));
    });
  }

  /** The model input at timestep t (identity for DDPM/DDIM). */
  scaleModelInput(sample: T.Tensor, _t: number): T.Tensor {
    return sample;
  }

  /** x0 and epsilon of a model output at t (an epsilon prediction at alpha_bar(t) = 0 is an error naming t). */
  protected split(t: number, modelOutput: T.Tensor, sample: T.Tensor): { x0: T.Tensor; eps: T.Tensor } {
    try {
      return splitPrediction(this.config.predictionType, modelOutput, sample, this.schedule.alphaBar(t));
    } catch (e) {
      throw new Error(`${this.constructor.name}.step(t=${t}): ${(e as Error).message}`, { cause: e });
    }
  }

  protected clipped(x0: T.Tensor): T.Tensor {
    const r = this.config.clipSampleRange;
    return this.config.clipSample ? T.clamp(x0, -r, r) : x0;
  }

  protected noise(sample: T.Tensor, options: StepOptions): T.Tensor {
    if (options.noise) {
      if (options.noise.shape.join() !== sample.shape.join()) {
        throw new Error(
          `step: noise ${T.formatShape(options.noise.shape)} does not match sample ${T.formatShape(sample.shape)}`,
        );
      }
      return options.noise;
    }
    return T.randn([...sample.shape], options.generator ? { generator: options.generator } : {});
  }

  abstract step(modelOutput: T.Tensor, t: number, sample: T.Tensor, options?: StepOptions): StepResult;
}
