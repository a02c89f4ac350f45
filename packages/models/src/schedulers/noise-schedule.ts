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
  return betas;
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
        steps = Array.from({ length: numSteps }, (_, i) => roundHalfEven(numSteps === 1 ? 0 : (i * (T - 1)) / (numSteps - 1))).reverse();
        break;
      default:
        throw new Error(`setTimesteps: unknown timestep spacing '${this.config.timestepSpacing as string}'`);
    }
    return steps;
  }
}
