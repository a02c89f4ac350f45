import * as T from '@leffa-webgpu/core';
import { Attention } from './attention.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.js';
import { type VaeTiling, type VaeTilingOptions, resolveVaeTiling, tiledDecode, tiledEncode } from './vae-tiling.js';

const { Conv2d, GroupNorm, ModuleList } = T.nn;

/** diffusers' AutoencoderKL config (camelCase). */
export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  blockOutChannels: number[];
  /**
   * The decoder's channels per level when they differ from the encoder's (ours, not diffusers'; same number of
   * levels): a wider decoder draws more detail from the same latents, so UNets trained on the encoder keep working.
   */
  decoderBlockOutChannels?: number[];
  layersPerBlock: number;
  normNumGroups: number;
  /** Latents are multiplied by this after encoding (SD: 0.18215). */
  scalingFactor: number;
}

/** The decoder's channels per level (finest first): decoderBlockOutChannels, else the encoder's. */
export const decoderChannels = (c: VaeConfig): number[] => c.decoderBlockOutChannels ?? c.blockOutChannels;

function checkVaeConfig(c: VaeConfig): void {
  const dec = c.decoderBlockOutChannels;
  if (dec === undefined) return;
  const levels = c.blockOutChannels.length;
  if (dec.length !== levels || dec.some((ch) => !Number.isInteger(ch) || ch < 1 || ch % c.normNumGroups !== 0))
    throw new Error(
      `AutoencoderKL: decoderBlockOutChannels [${dec}] must have ${levels} levels like blockOutChannels [${c.blockOutChannels}], each a positive multiple of normNumGroups ${c.normNumGroups}`,
    );
}

export const SD15_VAE: VaeConfig = {
  inChannels: 3,
  outChannels: 3,
  latentChannels: 4,
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  normNumGroups: 32,
  scalingFactor: 0.18215,
};

/**
 * SDXL's VAE (stable-diffusion-xl-1.0-inpainting-0.1's vae/config.json): SD's layout and key names, retrained,
 * with latents scaled by 0.13025.
 */
export const SDXL_VAE: VaeConfig = {
  ...SD15_VAE,
  scalingFactor: 0.13025,
};

/** Same layout, 8x downsampling kept, narrow channels: for tests and for training from scratch here. */
export const TINY_VAE: VaeConfig = {
  ...SD15_VAE,
  blockOutChannels: [16, 32, 32, 32],
  layersPerBlock: 1,
  normNumGroups: 8,
};

const EPS = 1e-6;

/** A down (encoder) or up (decoder) stage: resnets, then an optional resampler. */
class VaeStage extends T.Module {
  readonly resnets: T.nn.ModuleList<ResnetBlock2D>;
  readonly downsamplers: T.nn.ModuleList<Downsample2D> | null = null;
  readonly upsamplers: T.nn.ModuleList<Upsample2D> | null = null;

  constructor(inC: number, outC: number, layers: number, groups: number, resample: 'down' | 'up' | 'none') {
    super();
    this.resnets = this.addModule(
      'resnets',
      new ModuleList(
        Array.from({ length: layers }, (_, i) => new ResnetBlock2D(i === 0 ? inC : outC, outC, { groups, eps: EPS })),
      ),
    );
    if (resample === 'down')
      this.downsamplers = this.addModule('downsamplers', new ModuleList([new Downsample2D(outC, true)]));
    if (resample === 'up') this.upsamplers = this.addModule('upsamplers', new ModuleList([new Upsample2D(outC)]));
  }

  forward(x: T.Tensor): T.Tensor {
    let h = x;
    for (const r of this.resnets) h = r.forward(h);
    if (this.downsamplers) h = this.downsamplers.at(0).forward(h);
    if (this.upsamplers) h = this.upsamplers.at(0).forward(h);
    return h;
  }
}

/** UNetMidBlock2D of the VAE: resnet, single-head spatial attention, resnet. */
export class VaeMidBlock extends T.Module {
  readonly resnets: T.nn.ModuleList<ResnetBlock2D>;
  readonly attentions: T.nn.ModuleList<Attention>;

  constructor(channels: number, groups: number) {
    super();
    this.attentions = this.addModule(
      'attentions',
      new ModuleList([
        new Attention(channels, { heads: 1, dimHead: channels, qkvBias: true, groupNorm: { groups, eps: EPS } }),
      ]),
    );
    this.resnets = this.addModule(
      'resnets',
      new ModuleList([0, 1].map(() => new ResnetBlock2D(channels, channels, { groups, eps: EPS }))),
    );
  }

  forward(x: T.Tensor): T.Tensor {
    const h = this.attentions.at(0).forwardSpatial(this.resnets.at(0).forward(x));
    return this.resnets.at(1).forward(h);
  }
}

export class VaeEncoder extends T.Module {
  readonly conv_in: T.nn.Conv2d;
  readonly down_blocks: T.nn.ModuleList<VaeStage>;
  readonly mid_block: VaeMidBlock;
  readonly conv_norm_out: T.nn.GroupNorm;
  readonly conv_out: T.nn.Conv2d;

  constructor(c: VaeConfig) {
    super();
    const boc = c.blockOutChannels;
    const top = boc[boc.length - 1]!;
    this.conv_in = this.addModule('conv_in', new Conv2d(c.inChannels, boc[0]!, 3, { padding: 1 }));
    this.down_blocks = this.addModule(
      'down_blocks',
      new ModuleList(
        boc.map(
          (out, i) =>
            new VaeStage(
              i === 0 ? boc[0]! : boc[i - 1]!,
              out,
              c.layersPerBlock,
              c.normNumGroups,
              i < boc.length - 1 ? 'down' : 'none',
            ),
        ),
      ),
    );
    this.mid_block = this.addModule('mid_block', new VaeMidBlock(top, c.normNumGroups));
    this.conv_norm_out = this.addModule('conv_norm_out', new GroupNorm(c.normNumGroups, top, { eps: EPS }));
    this.conv_out = this.addModule('conv_out', new Conv2d(top, 2 * c.latentChannels, 3, { padding: 1 }));
  }

  forward(x: T.Tensor): T.Tensor {
    let h = this.conv_in.forward(x);
    for (const b of this.down_blocks) h = b.forward(h);
    h = this.mid_block.forward(h);
    return this.conv_out.forward(this.conv_norm_out.forwardSilu(h));
  }
}

export class VaeDecoder extends T.Module {
  readonly conv_in: T.nn.Conv2d;
  readonly mid_block: VaeMidBlock;
  readonly up_blocks: T.nn.ModuleList<VaeStage>;
  readonly conv_norm_out: T.nn.GroupNorm;
  readonly conv_out: T.nn.Conv2d;

  constructor(c: VaeConfig) {
    super();
    const rev = [...decoderChannels(c)].reverse();
    this.conv_in = this.addModule('conv_in', new Conv2d(c.latentChannels, rev[0]!, 3, { padding: 1 }));
    this.mid_block = this.addModule('mid_block', new VaeMidBlock(rev[0]!, c.normNumGroups));
    this.up_blocks = this.addModule(
      'up_blocks',
      new ModuleList(
        rev.map(
          (out, i) =>
            new VaeStage(
              i === 0 ? rev[0]! : rev[i - 1]!,
              out,
              c.layersPerBlock + 1,
              c.normNumGroups,
              i < rev.length - 1 ? 'up' : 'none',
            ),
        ),
      ),
    );
    const bottom = rev[rev.length - 1]!;
    this.conv_norm_out = this.addModule('conv_norm_out', new GroupNorm(c.normNumGroups, bottom, { eps: EPS }));
    this.conv_out = this.addModule('conv_out', new Conv2d(bottom, c.outChannels, 3, { padding: 1 }));
  }

  forward(z: T.Tensor): T.Tensor {
    let h = this.mid_block.forward(this.conv_in.forward(z));
    for (const b of this.up_blocks) h = b.forward(h);
    return this.conv_out.forward(this.conv_norm_out.forwardSilu(h));
  }
}

/** The encoder's output distribution: a diagonal Gaussian with log-variance clamped to [-30, 20]. */
export class DiagonalGaussian {
  readonly mean: T.Tensor;
  readonly logvar: T.Tensor;

  constructor(moments: T.Tensor) {
    const [mean, logvar] = T.chunk(moments, 2, 1) as [T.Tensor, T.Tensor];
    this.mean = mean;
    this.logvar = T.clamp(logvar, -30, 20);
  }

  /** mean + exp(logvar / 2) * noise (reparameterised, differentiable). */
  sample(generator?: T.Generator): T.Tensor {
    const noise = T.randn([...this.mean.shape], generator ? { generator } : {});
    return T.add(this.mean, T.mul(T.exp(T.mul(this.logvar, 0.5)), noise));
  }

  mode(): T.Tensor {
    return this.mean;
  }

  /** KL divergence to N(0, I), summed over C, H, W (one value per batch entry), as diffusers computes it. */
  kl(): T.Tensor {
    const terms = T.sub(T.add(T.square(this.mean), T.exp(this.logvar)), T.add(this.logvar, 1));
    return T.mul(T.sum(terms, [1, 2, 3]), 0.5);
  }
}

/** diffusers' AutoencoderKL: encoder, quant_conv, post_quant_conv, decoder (state-dict keys as diffusers). */
export class AutoencoderKL extends T.Module {
  readonly encoder: VaeEncoder;
  readonly decoder: VaeDecoder;
  readonly quant_conv: T.nn.Conv2d;
  readonly post_quant_conv: T.nn.Conv2d;
  /** Tiled encoding and decoding settings (null: whole images, the default). */
  tiling: VaeTiling | null = null;

  constructor(readonly config: VaeConfig) {
    super();
    checkVaeConfig(config);
    const z = config.latentChannels;
    this.encoder = this.addModule('encoder', new VaeEncoder(config));
    this.decoder = this.addModule('decoder', new VaeDecoder(config));
    this.quant_conv = this.addModule('quant_conv', new Conv2d(2 * z, 2 * z, 1));
    this.post_quant_conv = this.addModule('post_quant_conv', new Conv2d(z, z, 1));
  }

  /** Images [B, 3, H, W] in [-1, 1] (H, W multiples of 8) to the latent distribution. */
  encode(x: T.Tensor): DiagonalGaussian {
    const f = 2 ** (this.config.blockOutChannels.length - 1);
    if (x.rank !== 4 || x.shape[1] !== this.config.inChannels || x.shape[2]! % f !== 0 || x.shape[3]! % f !== 0) {
      throw new Error(
        `AutoencoderKL.encode: expected [B, ${this.config.inChannels}, H, W] with H and W multiples of ${f}, got ${T.formatShape(x.shape)}`,
      );
    }
    // Images take the weights' dtype (a float16 VAE encodes float32 images in float16).
    const image = T.cast(x, this.quant_conv.weight.dtype);
    const run = (t: T.Tensor) => this.quant_conv.forward(this.encoder.forward(t));
    return new DiagonalGaussian(this.tiling ? tiledEncode(image, this.tiling, run) : run(image));
  }

  /**
   * diffusers' enable_tiling(): from now on, images with a side over the tile are encoded, and latents with a
   * side over the latent tile decoded, in overlapping tiles blended together (see vae-tiling.ts).
   */
  enableTiling(options: VaeTilingOptions = {}): this {
    this.tiling = resolveVaeTiling(this.config, options);
    return this;
  }

  disableTiling(): this {
    this.tiling = null;
    return this;
  }

  /** Latents (unscaled) to images in roughly [-1, 1]. */
  decode(z: T.Tensor): T.Tensor {
    if (z.rank !== 4 || z.shape[1] !== this.config.latentChannels) {
      throw new Error(
        `AutoencoderKL.decode: expected [B, ${this.config.latentChannels}, h, w], got ${T.formatShape(z.shape)}`,
      );
    }
    const latent = T.cast(z, this.post_quant_conv.weight.dtype);
    const run = (t: T.Tensor) => this.decoder.forward(this.post_quant_conv.forward(t));
    return this.tiling ? tiledDecode(latent, this.tiling, run) : run(latent);
  }
}

/**
 * Older diffusers VAE checkpoints name the mid-block attention query/key/value/proj_attn; this maps them to
 * to_q/to_k/to_v/to_out.0 so they load into AutoencoderKL.
 */
export function convertLegacyVaeKeys<V>(dict: Map<string, V>): Map<string, V> {
  const rename: Record<string, string> = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' };
  const out = new Map<string, V>();
  for (const [k, v] of dict) {
    out.set(
      k.replace(
        /(\.attentions\.\d+\.)(query|key|value|proj_attn)\./,
        (_, pre: string, name: string) => `${pre}${rename[name]}.`,
      ),
      v,
    );
  }
  return out;
}
