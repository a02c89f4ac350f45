import * as T from '@leffa-webgpu/core';
import { DDPMScheduler } from '../schedulers/ddpm.js';
import { type NoiseScheduleConfig, SDXL_SCHEDULE } from '../schedulers/noise-schedule.js';
import type { AttentionReportRequest } from './reference.js';
import {
  SD15_UNET,
  SDXL_TINY_UNET,
  SDXL_UNET,
  TINY_UNET,
  UNet2DConditionModel,
  type UNetConfig,
  type UNetOutput,
} from './unet.js';
import { AutoencoderKL, SD15_VAE, SDXL_VAE, TINY_VAE, type VaeConfig } from './vae.js';

/**
 * Channels of the generative UNet input, in Leffa's order: noisy latent, mask 1, masked-image latent,
 * DensePose (resized to the latent) 3. 12 for the released models' 4-channel latents.
 */
export function leffaInChannels(latentChannels: number): number {
  return 2 * latentChannels + 4;
}

/** The released models' generative UNet input channels (4-channel latents). */
export const LEFFA_IN_CHANNELS = leffaInChannels(4);

export interface LeffaConfig {
  vae: VaeConfig;
  unet: UNetConfig;
  schedule?: Partial<NoiseScheduleConfig>;
}

/**
 * `sd15`: virtual_tryon.pth (stable-diffusion-inpainting). `sdxl`: pose_transfer.pth
 * (stable-diffusion-xl-1.0-inpainting-0.1: SDXL UNet and VAE, zero-terminal-SNR schedule). `tiny` and
 * `sdxlTiny`: the two layouts at test size.
 */
export const LEFFA_CONFIGS: Record<'tiny' | 'sd15' | 'sdxl' | 'sdxlTiny', LeffaConfig> = {
  tiny: { vae: TINY_VAE, unet: TINY_UNET },
  sd15: { vae: SD15_VAE, unet: SD15_UNET },
  sdxl: { vae: SDXL_VAE, unet: SDXL_UNET, schedule: SDXL_SCHEDULE },
  sdxlTiny: {
    vae: { ...TINY_VAE, scalingFactor: SDXL_VAE.scalingFactor },
    unet: SDXL_TINY_UNET,
    schedule: SDXL_SCHEDULE,
  },
};

export interface LeffaInputs {
  /** Noisy latent [B, 4, h, w]. */
  noisyLatent: T.Tensor;
  /** Inpainting mask at latent size [B, 1, h, w] (1 = regenerate). */
  maskLatent: T.Tensor;
  /** Latent of the masked (agnostic) person image [B, 4, h, w]. */
  maskedLatent: T.Tensor;
  /** DensePose render resized to the latent [B, 3, h, w]. */
  densepose: T.Tensor;
}

/**
 * Leffa's model: `vae`, `unet_encoder` (reference UNet, 4 input channels) and `unet` (generative UNet,
 * 12 input channels), named as in the official virtual_tryon.pth / pose_transfer.pth state dicts.
 */
export class LeffaModel extends T.Module {
  readonly vae: AutoencoderKL;
  readonly unet_encoder: UNet2DConditionModel;
  readonly unet: UNet2DConditionModel;
  readonly scheduler: DDPMScheduler;

  constructor(readonly config: LeffaConfig) {
    super();
    const latent = config.vae.latentChannels;
    this.vae = this.addModule('vae', new AutoencoderKL(config.vae));
    this.unet_encoder = this.addModule(
      'unet_encoder',
      new UNet2DConditionModel({ ...config.unet, inChannels: latent, outChannels: latent }),
    );
    this.unet = this.addModule(
      'unet',
      new UNet2DConditionModel({ ...config.unet, inChannels: leffaInChannels(latent), outChannels: latent }),
    );
    this.scheduler = new DDPMScheduler(config.schedule ?? {});
  }

  /** Images in [-1, 1] to scaled latents (sampled from the posterior, or its mean). */
  encodeImage(image: T.Tensor, options: { sample?: boolean; generator?: T.Generator } = {}): T.Tensor {
    const dist = this.vae.encode(image);
    const z = options.sample === false ? dist.mode() : dist.sample(options.generator);
    return T.mul(z, this.config.vae.scalingFactor);
  }

  /** Scaled latents back to images in [-1, 1]. */
  decodeLatent(latent: T.Tensor): T.Tensor {
    return this.vae.decode(T.mul(latent, 1 / this.config.vae.scalingFactor));
  }

  /** The reference UNet's features for a clean reference latent at timestep(s) t. */
  referenceFeatures(referenceLatent: T.Tensor, t: number | readonly number[]): T.Tensor[] {
    return this.unet_encoder.forward(referenceLatent, t, { reference: { mode: 'collect' } }).referenceFeatures;
  }

  /** The generative UNet's noise prediction given reference features (and optional attention reports). */
  predictNoise(
    inputs: LeffaInputs,
    t: number | readonly number[],
    features: T.Tensor[],
    report?: AttentionReportRequest,
  ): UNetOutput {
    // In the UNet's dtype: a float16 model takes float32 latents and conditions.
    const dtype = this.unet.conv_in.weight.dtype;
    const parts = [inputs.noisyLatent, inputs.maskLatent, inputs.maskedLatent, inputs.densepose].map((t) =>
      T.cast(t, dtype),
    );
    const x = T.concat(parts, 1);
    return this.unet.forward(x, t, { reference: { mode: 'consume', features }, ...(report ? { report } : {}) });
  }
}
