import * as T from '@leffa-webgpu/core';
import { AutoencoderKL, type VaeConfig } from '@leffa-webgpu/models';
import { imagesToNCHW } from '@leffa-webgpu/data';
import { TrainerBase } from '../trainer.js';

export interface VaeTrainOptions {
  config: VaeConfig;
  seed?: number;
  lr?: number;
  /** Weight of the KL term against the per-pixel reconstruction loss. */
  klWeight?: number;
  /**
   * Weight of an extra L1 + MSE on the colour part of each pixel (its RGB minus its grey level; default 0).
   * Colour varies far less than brightness in these images, so plain RGB losses teach it last: tiny VAEs
   * trained for thousands of steps still return grey garments. Weighting it makes colour arrive with shape.
   */
  chromaWeight?: number;
  /**
   * Train the decoder (with post_quant_conv) only: the encoder runs without gradients and its latents, which
   * UNets may already be trained on, stay exactly as they are.
   */
  decoderOnly?: boolean;
}

/** The colour part of NCHW RGB images: each channel minus the pixel's mean over the three. */
function chroma(x: T.Tensor): T.Tensor {
  return T.sub(x, T.mean(x, [1], true));
}

export interface VaeLosses {
  total: T.Tensor;
  reconstruction: T.Tensor;
  kl: T.Tensor;
}

/**
 * Trains an AutoencoderKL from scratch (no pretrained VAE can be downloaded here): L1 + MSE reconstruction of
 * the decoded posterior sample (optionally plus a weighted L1 + MSE of its colour part) and a small KL to
 * N(0, I), AdamW. The latents it learns are what the Leffa
 * UNets are trained on.
 */
export class VaeTrainer extends TrainerBase {
  protected readonly name = 'VaeTrainer';
  readonly vae: AutoencoderKL;
  readonly optimizer: T.optim.AdamW;
  readonly generator: T.Generator;
  readonly rng = null;

  constructor(
    readonly options: VaeTrainOptions,
    vae?: AutoencoderKL,
  ) {
    super();
    this.vae = vae ?? new AutoencoderKL(options.config);
    this.generator = new T.Generator(options.seed ?? 0);
    this.optimizer = new T.optim.AdamW(this.trainedParameters(), { lr: options.lr ?? 2e-3, weightDecay: 0 });
  }

  /** What the optimizer updates: the whole VAE, or with decoderOnly the decoder and post_quant_conv. */
  trainedParameters(): T.Tensor[] {
    if (!this.options.decoderOnly) return this.vae.parameters();
    return [...this.vae.post_quant_conv.parameters(), ...this.vae.decoder.parameters()];
  }

  /** One step on HWC uint8 images of one size. */
  step(images: Uint8Array[], height: number, width: number): VaeLosses {
    const losses = T.tidy(() => {
      const x = T.tensor(imagesToNCHW(images, height, width), [images.length, 3, height, width]);
      const dist = this.options.decoderOnly ? T.noGrad(() => this.vae.encode(x)) : this.vae.encode(x);
      const recon = this.vae.decode(dist.sample(this.generator));
      const reconstruction = T.add(T.l1Loss(recon, x), T.mseLoss(recon, x));
      const kl = T.div(T.mean(dist.kl()), height * width * 3);
      let total = T.add(reconstruction, T.mul(kl, this.options.klWeight ?? 1e-4));
      const chromaWeight = this.options.chromaWeight ?? 0;
      if (chromaWeight > 0) {
        const [c, cx] = [chroma(recon), chroma(x)];
        total = T.add(total, T.mul(T.add(T.l1Loss(c, cx), T.mseLoss(c, cx)), chromaWeight));
      }
      total.backward();
      T.optim.clipGradNorm(this.trainedParameters(), 1);
      this.optimizer.step();
      this.optimizer.zeroGrad();
      return { total: total.detach(), reconstruction: reconstruction.detach(), kl: kl.detach() };
    });
    this.stepCount++;
    return losses;
  }

  protected parts(): T.CheckpointParts {
    return { model: this.vae, optimizer: this.optimizer };
  }

  protected override ownExtra(): Record<string, unknown> {
    return {
      config: this.options.config,
      chromaWeight: this.options.chromaWeight ?? 0,
      decoderOnly: this.options.decoderOnly ?? false,
    };
  }
}
