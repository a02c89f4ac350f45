import * as T from '@leffa-webgpu/core';

export interface TimestepEmbeddingOptions {
  flipSinToCos?: boolean;
  downscaleFreqShift?: number;
  scale?: number;
  maxPeriod?: number;
}

/**
 * Sinusoidal timestep embedding as diffusers' get_timestep_embedding: [B, dim] of sin/cos of
 * t * exp(-ln(maxPeriod) * i / (half - shift)). Computed on the CPU (in double precision from float32
 * frequencies), because GPU sin loses accuracy at the large arguments (up to ~1000 rad) timesteps produce.
 */
export function timestepEmbedding(
  timesteps: readonly number[],
  dim: number,
  options: TimestepEmbeddingOptions = {},
): T.Tensor {
  const half = Math.floor(dim / 2);
  const shift = options.downscaleFreqShift ?? 1;
  const scale = options.scale ?? 1;
  const maxPeriod = options.maxPeriod ?? 10000;
  if (half === 0 || half - shift <= 0)
    throw new Error(`timestepEmbedding: dim ${dim} is too small for downscaleFreqShift ${shift}`);
  const freqs = Array.from({ length: half }, (_, i) =>
    Math.fround(Math.exp(Math.fround((-Math.log(maxPeriod) * i) / (half - shift)))),
  );
  const out = new Float32Array(timesteps.length * dim);
  timesteps.forEach((t, b) => {
    for (let i = 0; i < half; i++) {
      const arg = Math.fround(Math.fround(t * freqs[i]!) * scale);
      const [first, second] = options.flipSinToCos ? [Math.cos(arg), Math.sin(arg)] : [Math.sin(arg), Math.cos(arg)];
      out[b * dim + i] = first;
      out[b * dim + half + i] = second;
    }
  });
  return T.tensor(out, [timesteps.length, dim]);
}
