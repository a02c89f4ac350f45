/**
 * The forward-process noise schedule shared by the DDPM and DDIM samplers, with diffusers' conventions
 * (beta schedules, alphas_cumprod, timestep spacing) so that configs of official checkpoints apply unchanged.
 */

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';

export interface NoiseScheduleConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  predictionType: PredictionType;
  /** Clamp the predicted x0 to [-clipSampleRange, clipSampleRange]. */
  clipSample: boolean;
  clipSampleRange: number;
  /** Added to every inference timestep (Stable Diffusion uses 1 with 'leading' spacing). */
  stepsOffset: number;
  timestepSpacing: TimestepSpacing;
  /**
   * Rescale the betas to zero terminal SNR (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps
   * are Flawed", Algorithm 1; diffusers' rescale_betas_zero_snr): sqrt(alpha_bar) is shifted so that its last
   * value is 0 and scaled so that its first is unchanged. alpha_bar(T - 1) is then exactly 0 (the last beta is
   * 1): x_T is pure noise, as at sampling time. Leffa sets it for its SDXL models. Absent: false.
   */
  rescaleBetasZeroSnr?: boolean;
}

/** Stable Diffusion 1.5 (and its inpainting variant, which Leffa starts from). */
export const SD15_SCHEDULE: NoiseScheduleConfig = {
  numTrainTimesteps: 1000,
  betaStart: 0.00085,
  betaEnd: 0.012,
  betaSchedule: 'scaled_linear',
  predictionType: 'epsilon',
  clipSample: false,
  clipSampleRange: 1,
  stepsOffset: 1,
  timestepSpacing: 'leading',
  rescaleBetasZeroSnr: false,
};

/**
 * stable-diffusion-xl-1.0-inpainting-0.1's scheduler config as Leffa loads it into a DDPMScheduler for
 * pose_transfer.pth: SD's scaled-linear betas and leading spacing, with `rescale_betas_zero_snr=True` (Leffa's
 * LeffaModel.build_models).
 */
export const SDXL_SCHEDULE: NoiseScheduleConfig = {
  ...SD15_SCHEDULE,
  rescaleBetasZeroSnr: true,
};

export function makeBetas(config: NoiseScheduleConfig): Float64Array {
  const T = config.numTrainTimesteps;
  const betas = new Float64Array(T);
  const lin = (a: number, b: number, i: number) => (T === 1 ? a : a + ((b - a) * i) / (T - 1));
  switch (config.betaSchedule) {
    case 'linear':
      for (let i = 0; i < T; i++) betas[i] = lin(config.betaStart, config.betaEnd, i);
      break;
    case 'scaled_linear':
      for (let i = 0; i < T; i++) betas[i] = lin(Math.sqrt(config.betaStart), Math.sqrt(config.betaEnd), i) ** 2;
      break;
    case 'squaredcos_cap_v2': {
      // Nichol & Dhariwal's cosine schedule: alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2.
      const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
      for (let i = 0; i < T; i++) betas[i] = Math.min(1 - alphaBar((i + 1) / T) / alphaBar(i / T), 0.999);
      break;
    }
    default:
      throw new Error(`noise schedule: unknown beta schedule '${config.betaSchedule as string}'`);
  }
  return config.rescaleBetasZeroSnr ? rescaleZeroTerminalSnr(betas) : betas;
}

/**
 * diffusers' rescale_zero_terminal_snr (in float64): betas whose alpha_bar has sqrt shifted to end at exactly 0
 * and scaled to start at its old value; the last beta becomes 1.
 */
export function rescaleZeroTerminalSnr(betas: Float64Array): Float64Array {
  const n = betas.length;
  const sqrtAlphaBar = new Float64Array(n);
  let prod = 1;
  for (let i = 0; i < n; i++) {
    prod *= 1 - betas[i]!;
    sqrtAlphaBar[i] = Math.sqrt(prod);
  }
  const first = sqrtAlphaBar[0]!;
  const last = sqrtAlphaBar[n - 1]!;
  if (!(first > last)) {
    throw new Error(
      `noise schedule: zero-terminal-SNR rescaling needs alpha_bar to decrease (sqrt alpha_bar goes from ${first} to ${last} over ${n} timesteps)`,
    );
  }
  const out = new Float64Array(n);
  let prev = 1;
  for (let i = 0; i < n; i++) {
    const s = ((sqrtAlphaBar[i]! - last) * first) / (first - last);
    const alphaBar = s * s;
    out[i] = 1 - (i === 0 ? alphaBar : alphaBar / prev);
    prev = alphaBar;
  }
  return out;
}

/** numpy's rounding (half to even), which diffusers' timestep arithmetic goes through. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export class NoiseSchedule {
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;

  constructor(readonly config: NoiseScheduleConfig) {
    this.betas = makeBetas(config);
    this.alphasCumprod = new Float64Array(this.betas.length);
    let prod = 1;
    this.betas.forEach((b, i) => {
      prod *= 1 - b;
      this.alphasCumprod[i] = prod;
    });
  }

  get numTrainTimesteps(): number {
    return this.config.numTrainTimesteps;
  }

  /** alpha_bar(t), checking the range. */
  alphaBar(t: number): number {
    const a = this.alphasCumprod[t];
    if (!Number.isInteger(t) || a === undefined) {
      throw new Error(`noise schedule: timestep ${t} is outside [0, ${this.numTrainTimesteps - 1}]`);
    }
    return a;
  }

  /** Inference timesteps, descending, with diffusers' spacing rules. */
  inferenceTimesteps(numSteps: number): number[] {
    const T = this.numTrainTimesteps;
    if (!Number.isInteger(numSteps) || numSteps < 1 || numSteps > T) {
      throw new Error(`setTimesteps: numInferenceSteps must be in 1..${T}, got ${numSteps}`);
    }
    let steps: number[];
    switch (this.config.timestepSpacing) {
      case 'leading': {
        const ratio = Math.floor(T / numSteps);
        steps = Array.from({ length: numSteps }, (_, i) => Math.round(i * ratio) + this.config.stepsOffset).reverse();
        break;
      }
      case 'trailing': {
        const ratio = T / numSteps;
        steps = Array.from({ length: numSteps }, (_, i) => roundHalfEven(T - i * ratio) - 1);
        break;
      }
      case 'linspace':
        steps = Array.from({ length: numSteps }, (_, i) =>
          roundHalfEven(numSteps === 1 ? 0 : (i * (T - 1)) / (numSteps - 1)),
        ).reverse();
        break;
      default:
        throw new Error(`setTimesteps: unknown timestep spacing '${this.config.timestepSpacing as string}'`);
    }
    return steps;
  }
}
