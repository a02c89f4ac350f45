import * as T from '@leffa-webgpu/core';
import { type NoiseScheduleConfig, SD15_SCHEDULE } from './noise-schedule.js';
import { Sampler, type StepOptions, type StepResult } from './sampler.js';

/**
 * Ancestral DDPM sampling (Ho et al. 2020) with diffusers' DDPMScheduler formulas and its default
 * 'fixed_small' variance: x_{t'} = c0 x0 + ct x_t + sigma z, skipping steps when fewer inference steps are used.
 * With a zero-terminal-SNR schedule alpha_bar(T - 1) = 0 is used as it is, as diffusers does (no clamping):
 * there ct = 0 and the mean of x_{t'} is c0 x0 alone (see splitPrediction for an epsilon prediction there).
 */
export class DDPMScheduler extends Sampler {
  constructor(config: Partial<NoiseScheduleConfig> = {}) {
    super({ ...SD15_SCHEDULE, ...config });
  }

  step(modelOutput: T.Tensor, t: number, sample: T.Tensor, options: StepOptions = {}): StepResult {
    const prevT = this.previousTimestep(t);
    const abar = this.schedule.alphaBar(t);
    const abarPrev = prevT >= 0 ? this.schedule.alphaBar(prevT) : 1;
    const alpha = abar / abarPrev;
    const beta = 1 - alpha;
    const c0 = (Math.sqrt(abarPrev) * beta) / (1 - abar);
    const ct = (Math.sqrt(alpha) * (1 - abarPrev)) / (1 - abar);
    return T.tidy(() => {
      const x0 = this.clipped(this.split(t, modelOutput, sample).x0);
      let prev = T.map('ddpm.step', 'alpha * a + beta * b', [x0, sample], c0, ct);
      if (t > 0) {
        const variance = Math.max(((1 - abarPrev) / (1 - abar)) * beta, 1e-20);
        const noise = this.noise(sample, options);
        prev = T.map('ddpm.step', 'a + alpha * b', [prev, noise], Math.sqrt(variance));
      }
      return { prevSample: prev, predOriginalSample: x0 };
    });
  }
}
