import * as T from '@leffa-webgpu/core';
import { DDIMScheduler, DDPMScheduler, NoiseSchedule, SD15_SCHEDULE } from '@leffa-webgpu/models';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

const OPS: Record<string, OpAdapter> = {
  alphas_cumprod: (_, a) =>
    T.tensor(Array.from(new NoiseSchedule({ ...SD15_SCHEDULE, betaSchedule: a.betaSchedule, betaStart: a.betaStart, betaEnd: a.betaEnd }).alphasCumprod)),
  timesteps: (_, a) =>
    T.tensor(new NoiseSchedule({ ...SD15_SCHEDULE, timestepSpacing: a.spacing, stepsOffset: a.stepsOffset }).inferenceTimesteps(a.steps)),
  ddpm_step: ([out, sample, noise], a) => {
    const s = new DDPMScheduler({ predictionType: a.prediction, clipSample: a.clip });
    s.setTimesteps(a.steps);
    const r = s.step(out!, a.t, sample!, { noise: noise! });
    return [r.prevSample, r.predOriginalSample];
  },
  ddim_step: ([out, sample, noise], a) => {
    const s = new DDIMScheduler({ predictionType: a.prediction });
    s.setTimesteps(a.steps);
    const r = s.step(out!, a.t, sample!, { noise: noise!, eta: a.eta });
    return [r.prevSample, r.predOriginalSample];
  },
  add_noise: ([x0, noise], a) => new DDPMScheduler().addNoise(x0!, noise!, a.timesteps),
};

replayGoldenGroup('schedulers', OPS);
