import * as T from '@leffa-webgpu/core';
import type { LeffaModel } from '../diffusion/leffa-model.js';
import { DDIMScheduler } from '../schedulers/ddim.js';
import { DDPMScheduler } from '../schedulers/ddpm.js';
import type { Sampler } from '../schedulers/sampler.js';

export interface LeffaSampleInputs {
  /** Person (try-on) or source-pose canvas image [B, 3, H, W] in [-1, 1]. */
  image: T.Tensor;
  /** Reference image [B, 3, H, W] in [-1, 1]: the garment (try-on) or the source person (pose transfer). */
  reference: T.Tensor;
  /** Inpainting mask [B, 1, H, W], 1 where to generate. */
  mask: T.Tensor;
  /** DensePose condition [B, 3, H, W] in [-1, 1]. */
  densepose: T.Tensor;
}

/**
 * Sampling phases and the model parts each runs: 'encode' the VAE encoder (both images), 'reference' the
 * reference UNet (once with refAcceleration, else before every step), 'denoise' the generative UNet (every
 * step), 'decode' the VAE decoder.
 */
export type LeffaPhase = 'encode' | 'reference' | 'denoise' | 'decode';

export interface LeffaSampleOptions {
  steps?: number;
  /** Classifier-free guidance scale; the unconditional branch uses an all-zero reference latent (Leffa: 2.5). */
  guidanceScale?: number;
  /**
   * Rescale of the guided noise toward the conditional prediction's std (Lin et al. 2023, section 3.4). Leffa's
   * released pipeline always passes the guidance scale as this factor, which is the default here; 0 disables it.
   */
  guidanceRescale?: number;
  /** Default 'ddpm' (ancestral steps), as Leffa's released pipeline samples (diffusers' DDPMScheduler). */
  sampler?: 'ddpm' | 'ddim';
  /** DDIM's eta (DDPM always injects noise). */
  eta?: number;
  /** Run the reference UNet once (at the middle timestep) instead of at every step ("ref acceleration"). */
  refAcceleration?: boolean;
  generator?: T.Generator;
  /** Called after each denoising step (for progress bars). */
  onStep?: (step: number, total: number) => void;
  /**
   * Awaited before each phase starts (see LeffaPhase): where a memory-saving schedule moves model parts on and
   * off the device. The computation is the same with or without it.
   */
  beforePhase?: (phase: LeffaPhase) => Promise<void> | void;
}

/**
 * Leffa's classifier-free guidance: uncond + scale (cond - uncond), then (for a positive scale) mixed by `rescale`
 * with its version rescaled to the conditional prediction's std over C, H, W (rescale_noise_cfg, Lin et al. 2023,
 * section 3.4). The released pipeline passes the guidance scale as the rescale factor, the default here.
 */
export function classifierFreeGuidance(uncond: T.Tensor, cond: T.Tensor, scale: number, rescale = scale): T.Tensor {
  const guided = T.add(uncond, T.mul(T.sub(cond, uncond), scale));
  if (!(scale > 0) || rescale === 0) return guided;
  const axes = Array.from({ length: cond.shape.length - 1 }, (_, i) => i + 1);
  const rescaled = T.mul(guided, T.div(T.std(cond, axes, true), T.std(guided, axes, true)));
  return T.add(T.mul(rescaled, rescale), T.mul(guided, 1 - rescale));
}

/**
 * Leffa sampling: VAE-encode the masked image and the reference, compute reference features, denoise the
 * generative UNet's latent with classifier-free guidance, decode. Returns images [B, 3, H, W] in [-1, 1].
 * Intermediates of each step are freed as it ends; nothing is read back until the caller does.
 */
export async function leffaSample(
  model: LeffaModel,
  inputs: LeffaSampleInputs,
  options: LeffaSampleOptions = {},
): Promise<T.Tensor> {
  const steps = options.steps ?? 50;
  const scale = options.guidanceScale ?? 2.5;
  const rescale = options.guidanceRescale ?? scale;
  // Leffa always runs both branches; at scale 1 the guided noise is the conditional one, so it is skipped there.
  const cfg = scale !== 1;
  const generator = options.generator;
  const sampler: Sampler =
    options.sampler === 'ddim'
      ? new DDIMScheduler(model.config.schedule ?? {})
      : new DDPMScheduler(model.config.schedule ?? {});
  sampler.setTimesteps(steps);

  const phase = async (p: LeffaPhase) => {
    if (options.beforePhase) await options.beforePhase(p);
  };

  return T.noGrad(async () => {
    await phase('encode');
    const prepared = T.tidy(() => {
      const masked = T.mul(inputs.image, T.lt(inputs.mask, 0.5));
      const maskedLatent = model.encodeImage(masked, { generator });
      const refLatent = model.encodeImage(inputs.reference, { generator });
      const size = maskedLatent.shape.slice(2) as [number, number];
      const maskLatent = T.interpolate(inputs.mask, { size, mode: 'nearest' });
      const dpLatent = T.interpolate(inputs.densepose, { size, mode: 'nearest' });
      const twice = (t: T.Tensor) => (cfg ? T.concat([t, t], 0) : t);
      return {
        maskedLatent: twice(maskedLatent),
        maskLatent: twice(maskLatent),
        dpLatent: twice(dpLatent),
        // The unconditional half sees an all-zero reference latent.
        refLatent: cfg ? T.concat([T.zerosLike(refLatent), refLatent], 0) : refLatent,
        latent: T.randn([...maskedLatent.shape], generator ? { generator } : {}),
      };
    });
    const refAt = (t: number) => T.tidy(() => model.referenceFeatures(prepared.refLatent, t));
    let cached: T.Tensor[] | null = null;
    if (options.refAcceleration) {
      await phase('reference');
      cached = refAt(sampler.timesteps[Math.floor(steps / 2)]!);
    }

    let latent = prepared.latent;
    for (const [i, t] of sampler.timesteps.entries()) {
      let features = cached;
      if (!features) {
        await phase('reference');
        features = refAt(t);
      }
      await phase('denoise');
      const next = T.tidy(() => {
        const x = cfg ? T.concat([latent, latent], 0) : latent;
        const pred = model.predictNoise(
          {
            noisyLatent: sampler.scaleModelInput(x, t),
            maskLatent: prepared.maskLatent,
            maskedLatent: prepared.maskedLatent,
            densepose: prepared.dpLatent,
          },
          t,
          features,
        ).sample;
        let noise = pred;
        if (cfg) {
          const [uncond, cond] = T.chunk(pred, 2, 0) as [T.Tensor, T.Tensor];
          noise = classifierFreeGuidance(uncond, cond, scale, rescale);
        }
        const stepOptions = {
          ...(generator ? { generator } : {}),
          ...(options.sampler === 'ddim' ? { eta: options.eta ?? 0 } : {}),
        };
        return sampler.step(noise, t, latent, stepOptions).prevSample;
      });
      if (features !== cached) T.dispose(features);
      if (latent !== prepared.latent) latent.dispose();
      latent = next;
      options.onStep?.(i + 1, steps);
      // Let the queue drain now and then so progress callbacks reflect real work.
      if ((i + 1) % 5 === 0) await T.sync();
    }
    await phase('decode');
    const image = T.tidy(() => T.clamp(model.decodeLatent(latent), -1, 1));
    T.dispose([prepared, cached, latent]);
    return image;
  });
}
