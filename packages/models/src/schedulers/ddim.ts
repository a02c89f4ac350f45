import * as T from '@leffa-webgpu/core';
import { type NoiseScheduleConfig, SD15_SCHEDULE } from './noise-schedule.js';
import { Sampler, type StepOptions, type StepResult, splitPrediction } from './sampler.js';

export interface DDIMConfig extends NoiseScheduleConfig {
  /** Use alpha_bar = 1 after the last step (otherwise alpha_bar(0)); Stable Diffusion uses false. */
  setAlphaToOne: boolean;
}

/**
 * DDIM sampling (Song et al. 2021) with diffusers' DDIMScheduler formulas; eta = 0 is deterministic,
 * eta = 1 matches DDPM's variance. A zero-terminal-SNR schedule's alpha_bar(T - 1) = 0 is used as it is, as
 * diffusers does; sqrt(1 - alpha_bar_prev - std^2), 0 up to rounding there at eta = 1, is clamped at 0 (diffusers'
 * float32 can give NaN).
 */
export class DDIMScheduler extends Sampler {
  private readonly finalAlphaBar: number;

  constructor(config: Partial<DDIMConfig> = {}) {
    const full = { ...SD15_SCHEDULE, setAlphaToOne: false, ...config };
    super(full);
    this.finalAlphaBar = full.setAlphaToOne ? 1 : this.schedule.alphaBar(0);
  }

  /**
   * One step from t. `eta` scales the injected noise (0: deterministic); `useClippedModelOutput` re-derives
   * epsilon from the clipped x0 (diffusers' option of the same name); `noise` overrides the random draw.
   */
  step(
    modelOutput: T.Tensor,
    t: number,
    sample: T.Tensor,
    options: StepOptions & { eta?: number; useClippedModelOutput?: boolean } = {},
  ): StepResult {
    const eta = options.eta ?? 0;
    const prevT = this.previousTimestep(t);
    const abar = this.schedule.alphaBar(t);
    const abarPrev = prevT >= 0 ? this.schedule.alphaBar(prevT) : this.finalAlphaBar;
    const variance = ((1 - abarPrev) / (1 - abar)) * (1 - abar / abarPrev);
    const std = eta * Math.sqrt(variance);
    return T.tidy(() => {
      const split = this.split(t, modelOutput, sample);
      const x0 = this.clipped(split.x0);
      const eps = options.useClippedModelOutput ? splitPrediction('sample', x0, sample, abar).eps : split.eps;
      let prev = T.map(
        'ddim.step',
        'alpha * a + beta * b',
        [x0, eps],
        Math.sqrt(abarPrev),
        Math.sqrt(Math.max(1 - abarPrev - std * std, 0)),
      );
      if (eta > 0) {
        const noise = this.noise(sample, options);
        prev = T.map('ddim.step', 'a + alpha * b', [prev, noise], std);
      }
      return { prevSample: prev, predOriginalSample: x0 };
    });
  }
}
