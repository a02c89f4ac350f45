import * as T from '@leffa-webgpu/core';
import { DDPMScheduler } from '../schedulers/ddpm.js';
import { normalisedCoordinate } from './flow-field.js';
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
  /**
   * Ours, not Leffa's (the released configs leave it off): the reference UNet also reads the normalised (x, y)
   * of every latent position as two more input channels (CoordConv). A small UNet's early features see only a
   * few pixels around them, so on a garment with a repeating pattern its keys cannot tell one check or stripe
   * from another, and the generative UNet's queries cannot find the right one.
   */
  referenceCoordinates?: boolean;
}

/** Input channels the reference UNet's conv_in has besides the latent when `referenceCoordinates` is on. */
export const REFERENCE_COORDINATE_CHANNELS = 2;

/** [batch, 2, h, w]: x (channel 0) and y (channel 1) of each position, from -1 at the first to 1 at the last. */
export function coordinateChannels(batch: number, height: number, width: number, dtype: T.DType = 'float32'): T.Tensor {
  const plane = height * width;
  const data = new Float32Array(batch * 2 * plane);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      data[y * width + x] = normalisedCoordinate(x, width);
      data[plane + y * width + x] = normalisedCoordinate(y, height);
    }
  }
  for (let b = 1; b < batch; b++) data.copyWithin(b * 2 * plane, 0, 2 * plane);
  const coords = T.tensor(data, [batch, 2, height, width]);
  if (dtype === 'float32') return coords;
  const cast = T.cast(coords, dtype);
  coords.dispose();
  return cast;
}

/**
 * A state dict of a model without reference coordinates, made loadable into one with them: the reference UNet's
 * conv_in gets zero weights for the two coordinate channels, so the model computes exactly what it did until
 * training moves them. Returns a new map (the changed weight is a new tensor the caller disposes).
 */
export function withReferenceCoordinates(dict: Map<string, T.Tensor>): Map<string, T.Tensor> {
  const key = 'unet_encoder.conv_in.weight';
  const w = dict.get(key);
  if (w?.rank !== 4)
    throw new Error(
      `withReferenceCoordinates: the state dict has no 4-d ${key} (the reference UNet's input convolution)`,
    );
  const [cout, , kh, kw] = w.shape as [number, number, number, number];
  const zeros = T.zeros([cout, REFERENCE_COORDINATE_CHANNELS, kh, kw], w.dtype);
  const out = new Map(dict);
  out.set(key, T.concat([w, zeros], 1));
  zeros.dispose();
  return out;
}

/**
 * A state dict whose reference UNet is a copy of its generative UNet: ours, for the tiny models, as Leffa starts
 * its reference UNet from a pretrained denoiser (Stable Diffusion's) whose features already describe the image. A
 * reference UNet trained from scratch beside the generative one learns too little about the garment for the
 * generative UNet to read it (checkpoints/README.md). conv_in keeps the generative UNet's noisy-latent filters (its
 * first `latentChannels` input channels: the reference latent is a clean latent at t = 0) and, when the reference
 * UNet reads coordinates, its own coordinate filters. Returns a new map; the copies in it are the caller's to dispose.
 */
export function referenceFromGenerative(dict: Map<string, T.Tensor>, latentChannels: number): Map<string, T.Tensor> {
  const out = new Map(dict);
  const refKeys = [...dict.keys()].filter((k) => k.startsWith('unet_encoder.'));
  const missing = refKeys.filter((k) => !dict.has(`unet.${k.slice('unet_encoder.'.length)}`));
  if (refKeys.length === 0 || missing.length)
    throw new Error(
      `referenceFromGenerative: every reference UNet weight needs its generative UNet twin; ${refKeys.length ? `missing unet.* for ${missing.slice(0, 3).join(', ')}` : 'the state dict has no unet_encoder.* weights'}`,
    );
  for (const key of refKeys) {
    const twin = dict.get(`unet.${key.slice('unet_encoder.'.length)}`)!;
    const own = dict.get(key)!;
    if (key === 'unet_encoder.conv_in.weight') {
      const noisy = T.narrow(twin, 1, 0, latentChannels);
      const extra = own.shape[1]! - latentChannels;
      out.set(key, extra > 0 ? T.concat([noisy, T.narrow(own, 1, latentChannels, extra)], 1) : T.clone(noisy));
      noisy.dispose();
    } else if (twin.shape.join() !== own.shape.join())
      throw new Error(
        `referenceFromGenerative: ${key} is [${own.shape.join(', ')}] but its twin unet.* is [${twin.shape.join(', ')}]`,
      );
    else out.set(key, T.clone(twin));
  }
  return out;
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
      new UNet2DConditionModel({
        ...config.unet,
        inChannels: latent + (config.referenceCoordinates ? REFERENCE_COORDINATE_CHANNELS : 0),
        outChannels: latent,
      }),
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
    let input = referenceLatent;
    if (this.config.referenceCoordinates) {
      const [b, , h, w] = referenceLatent.shape as [number, number, number, number];
      const coords = coordinateChannels(b, h, w, referenceLatent.dtype);
      input = T.concat([referenceLatent, coords], 1);
      coords.dispose();
    }
    return this.unet_encoder.forward(input, t, { reference: { mode: 'collect' } }).referenceFeatures;
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
