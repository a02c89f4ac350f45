import * as T from '@leffa-webgpu/core';
import { DDIMScheduler, DDPMScheduler, NoiseSchedule, SD15_SCHEDULE, SDXL_SCHEDULE } from '@leffa-webgpu/models';
import { describe, expect, it } from 'vitest';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

/** Golden cases with `zeroSnr` use SDXL's schedule as Leffa builds it (rescale_betas_zero_snr=True). */
const base = (a: Record<string, any>) => (a.zeroSnr ? SDXL_SCHEDULE : SD15_SCHEDULE);

const OPS: Record<string, OpAdapter> = {
  alphas_cumprod: (_, a) =>
    T.tensor(
      Array.from(
        new NoiseSchedule({ ...base(a), betaSchedule: a.betaSchedule, betaStart: a.betaStart, betaEnd: a.betaEnd })
          .alphasCumprod,
      ),
    ),
  alphas_cumprod_tail: (_, a) =>
    T.tensor(
      Array.from(
        new NoiseSchedule({
          ...base(a),
          betaSchedule: a.betaSchedule,
          betaStart: a.betaStart,
          betaEnd: a.betaEnd,
        }).alphasCumprod.slice(-a.tail),
      ),
    ),
  timesteps: (_, a) =>
    T.tensor(
      new NoiseSchedule({
        ...SD15_SCHEDULE,
        timestepSpacing: a.spacing,
        stepsOffset: a.stepsOffset,
      }).inferenceTimesteps(a.steps),
    ),
  ddpm_step: ([out, sample, noise], a) => {
    const s = new DDPMScheduler({ ...base(a), predictionType: a.prediction, clipSample: a.clip });
    s.setTimesteps(a.steps);
    const r = s.step(out!, a.t, sample!, { noise: noise! });
    return [r.prevSample, r.predOriginalSample];
  },
  ddim_step: ([out, sample, noise], a) => {
    const s = new DDIMScheduler({ ...base(a), predictionType: a.prediction });
    s.setTimesteps(a.steps);
    const r = s.step(out!, a.t, sample!, { noise: noise!, eta: a.eta });
    return [r.prevSample, r.predOriginalSample];
  },
  add_noise: ([x0, noise], a) => new DDPMScheduler(base(a)).addNoise(x0!, noise!, a.timesteps),
};

replayGoldenGroup('schedulers', OPS);

describe('zero terminal SNR (SDXL_SCHEDULE)', () => {
  it('ends at alpha_bar = 0 exactly, keeps alpha_bar(0), and leaves SD 1.5 untouched', () => {
    const z = new NoiseSchedule(SDXL_SCHEDULE);
    const sd = new NoiseSchedule(SD15_SCHEDULE);
    expect(z.alphasCumprod[999]).toBe(0);
    expect(z.betas[999]).toBe(1);
    expect(z.alphasCumprod[998]).toBeGreaterThan(0);
    expect(z.alphasCumprod[0]).toBeCloseTo(sd.alphasCumprod[0]!, 12);
    expect(sd.alphasCumprod[999]).toBeGreaterThan(0.004); // SD 1.5's terminal SNR is not zero
    expect(new NoiseSchedule({ ...SD15_SCHEDULE, rescaleBetasZeroSnr: undefined }).alphasCumprod).toEqual(
      sd.alphasCumprod,
    );
    // The noised sample at the last timestep is the noise itself.
    const x0 = T.full([1, 2], 5);
    const noise = T.tensor([0.25, -1], [1, 2]);
    return new DDPMScheduler(SDXL_SCHEDULE)
      .addNoise(x0, noise, 999)
      .data()
      .then((d) => expect(Array.from(d)).toEqual([0.25, -1]));
  });

  it('an epsilon prediction at alpha_bar = 0 is an error naming the step (diffusers would return inf)', () => {
    const x = T.ones([1, 4, 2, 2]);
    const ddpm = new DDPMScheduler(SDXL_SCHEDULE);
    ddpm.setTimesteps(20);
    expect(() => ddpm.step(x, 999, x)).toThrow(
      /DDPMScheduler\.step\(t=999\): scheduler: alpha_bar = 0 .*epsilon prediction does not determine x0/,
    );
    const ddim = new DDIMScheduler({ ...SDXL_SCHEDULE, timestepSpacing: 'trailing' });
    ddim.setTimesteps(10);
    expect(ddim.timesteps[0]).toBe(999);
    expect(() => ddim.step(x, 999, x)).toThrow(/DDIMScheduler\.step\(t=999\)/);
    // Leffa's SDXL sampling (leading spacing, offset 1) never reaches t = 999 at the usual step counts.
    const leading = new DDPMScheduler(SDXL_SCHEDULE);
    for (const n of [10, 30, 50, 100]) {
      leading.setTimesteps(n);
      expect(leading.timesteps[0]!).toBeLessThan(999);
    }
  });

  it('DDIM with eta = 1 at alpha_bar = 0: the direction term is 0, not NaN (diffusers float32 can round it negative)', async () => {
    const s = new DDIMScheduler({ ...SDXL_SCHEDULE, predictionType: 'v_prediction' });
    s.setTimesteps(20);
    const v = T.tensor([0.5, -2, 1, 3], [1, 1, 2, 2]);
    const xt = T.tensor([1, 2, -1, 0.5], [1, 1, 2, 2]);
    const noise = T.tensor([0.1, 0.2, -0.3, 0.4], [1, 1, 2, 2]);
    const r = s.step(v, 999, xt, { noise, eta: 1 });
    const aPrev = s.schedule.alphaBar(949);
    // x0 = -v at alpha_bar = 0; x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) noise.
    const expected = [0.5, -2, 1, 3].map(
      (vi, i) => Math.sqrt(aPrev) * -vi + Math.sqrt(1 - aPrev) * [0.1, 0.2, -0.3, 0.4][i]!,
    );
    const got = Array.from(await r.prevSample.data());
    got.forEach((g, i) => expect(g).toBeCloseTo(expected[i]!, 5));
    expect(Array.from(await r.predOriginalSample.data())).toEqual([-0.5, 2, -1, -3]);
  });

  it('rejects a schedule that cannot be rescaled', () => {
    expect(() => new NoiseSchedule({ ...SDXL_SCHEDULE, numTrainTimesteps: 1 })).toThrow(
      /zero-terminal-SNR rescaling needs alpha_bar to decrease/,
    );
  });
});
