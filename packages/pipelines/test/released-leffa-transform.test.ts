/**
 * app.py's image handling around the released models against the code it calls (cv2 4.6, Pillow, Leffa's
 * LeffaTransform and do_repaint; test/golden/cases_released_leffa.py), and the diffusers config files read
 * into Leffa's architecture.
 */
import { LEFFA_CONFIGS, SD15_SCHEDULE, SD15_UNET, SDXL_SCHEDULE, SDXL_UNET, pilResize } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type RgbImage,
  cv2ResizeCubic,
  leffaConfigFromDiffusers,
  leffaRepaint,
  leffaTransform,
  pilGaussianBlur,
  resizeAndCenter,
  scheduleFromDiffusers,
  unetConfigFromDiffusers,
  vaeConfigFromDiffusers,
} from '@leffa-webgpu/pipelines';
import { ModelGolden } from '../../../test/helpers/model-golden.js';

let g: ModelGolden;
beforeAll(() => {
  g = new ModelGolden('released_leffa');
});

const bytes = (key: string) => Uint8Array.from(g.host(key).data);
/** An [H, W, C] uint8 golden as an RGB image (alpha dropped, grey repeated), as cv2.cvtColor does. */
function rgb(key: string): RgbImage {
  const h = g.host(key);
  const [height, width, c = 1] = h.shape as [number, number, number?];
  const data = new Uint8Array(height * width * 3);
  for (let i = 0; i < height * width; i++)
    for (let k = 0; k < 3; k++) data[3 * i + k] = h.data[i * c + (c === 1 ? 0 : k)]!;
  return { width: width!, height: height!, data };
}
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe("app.py's resizes", () => {
  it('resize_and_center (cv2 INTER_CUBIC, white padding) is bit-exact, down and up, RGB, RGBA and grey', () => {
    expect(maxDiff(resizeAndCenter(rgb('person'), 64, 48).data, bytes('src'))).toBe(0);
    expect(maxDiff(resizeAndCenter(rgb('garment_rgba'), 64, 48).data, bytes('ref'))).toBe(0);
    expect(maxDiff(resizeAndCenter(rgb('grey'), 52, 40).data, bytes('grey_up'))).toBe(0);
  });

  it("Image.resize's default bicubic filter is bit-exact (the parser input, the mask back to the model size)", () => {
    expect(maxDiff(pilResize(bytes('src'), 64, 48, 3, 32, 24, 'bicubic'), bytes('src_small'))).toBe(0);
    expect(maxDiff(pilResize(bytes('mask_small'), 32, 24, 1, 64, 48, 'bicubic'), bytes('mask'))).toBe(0);
  });

  it('rejects bad sizes naming the function', () => {
    expect(() => cv2ResizeCubic(new Uint8Array(5), 2, 2, 3, 4, 4)).toThrow(
      /cv2ResizeCubic: expected 2x2x3 = 12 bytes, got 5/,
    );
    expect(() => resizeAndCenter({ width: 2, height: 2, data: new Uint8Array(12) }, 0, 4)).toThrow(
      /resizeAndCenter: size must be positive integers, got 0x4/,
    );
  });
});

describe('LeffaTransform: the tensors the VAE and UNets receive', () => {
  const expectSame = (got: Float32Array, key: string) => expect(maxDiff(got, g.host(key).data)).toBe(0);

  it('try-on: src, ref and the parula densepose in [-1, 1], the mask binarised', () => {
    const a = leffaTransform(
      { src: rgb('src'), ref: rgb('ref'), mask: bytes('mask'), densepose: rgb('seg') },
      'virtual_tryon',
    );
    expectSame(a.src, 'tryon/src');
    expectSame(a.ref, 'tryon/ref');
    expectSame(a.mask, 'tryon/mask');
    expectSame(a.densepose, 'tryon/densepose');
  });

  it('pose transfer: the all-white mask and the IUV densepose (U, V / 255, I / 24)', () => {
    const a = leffaTransform(
      { src: rgb('src'), ref: rgb('ref'), mask: new Uint8Array(64 * 48).fill(255), densepose: rgb('iuv') },
      'pose_transfer',
    );
    expectSame(a.mask, 'pose/mask');
    expectSame(a.densepose, 'pose/densepose');
  });

  it('names the input of the wrong size', () => {
    const src = rgb('src');
    expect(() =>
      leffaTransform({ src, ref: rgb('person'), mask: bytes('mask'), densepose: src }, 'virtual_tryon'),
    ).toThrow(/leffaTransform: ref is 53x77 .* expected a 48x64 RGB image like src/);
    expect(() => leffaTransform({ src, ref: src, mask: new Uint8Array(3), densepose: src }, 'virtual_tryon')).toThrow(
      /leffaTransform: mask has 3 values, expected 3072/,
    );
  });
});

describe('do_repaint', () => {
  it("Pillow's GaussianBlur is bit-exact for integer and fractional radii", () => {
    const m = g.host('blur/in');
    const [h, w] = m.shape as [number, number];
    for (const r of [1, 2, 5, 1.5])
      expect(maxDiff(pilGaussianBlur(Uint8Array.from(m.data), h, w, r), g.host(`blur/r${r}`).data), `radius ${r}`).toBe(
        0,
      );
  });

  it('blends the person and the result through the blurred mask (radius height // 100, odd)', () => {
    for (const h of [64, 310]) {
      const mask = g.host(`repaint${h}/mask`);
      const out = leffaRepaint(
        rgb(`repaint${h}/person`),
        rgb(`repaint${h}/result`),
        Float32Array.from(mask.data, (v) => v / 255),
      );
      expect(maxDiff(out.data, bytes(`repaint${h}/out`)), `height ${h}`).toBe(0);
    }
  });
});

// The released folders' config files (stable-diffusion-inpainting, stable-diffusion-xl-1.0-inpainting-0.1).
const SD15_UNET_JSON = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 9,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};
const SDXL_UNET_JSON = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  addition_embed_type: 'text_time',
  addition_embed_type_num_heads: 64,
  addition_time_embed_dim: 256,
  attention_head_dim: [5, 10, 20],
  block_out_channels: [320, 640, 1280],
  center_input_sample: false,
  class_embed_type: null,
  class_embeddings_concat: false,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
  cross_attention_dim: 2048,
  cross_attention_norm: null,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  downsample_padding: 1,
  dual_cross_attention: false,
  encoder_hid_dim: null,
  encoder_hid_dim_type: null,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 9,
  layers_per_block: 2,
  mid_block_only_cross_attention: null,
  mid_block_scale_factor: 1,
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  norm_eps: 1e-5,
  norm_num_groups: 32,
  num_attention_heads: null,
  num_class_embeds: null,
  only_cross_attention: false,
  out_channels: 4,
  projection_class_embeddings_input_dim: 2816,
  resnet_out_scale_factor: 1.0,
  resnet_skip_time_act: false,
  resnet_time_scale_shift: 'default',
  sample_size: 128,
  time_cond_proj_dim: null,
  time_embedding_act_fn: null,
  time_embedding_dim: null,
  time_embedding_type: 'positional',
  timestep_post_act: null,
  transformer_layers_per_block: [1, 2, 10],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  upcast_attention: null,
  use_linear_projection: true,
};
const VAE_JSON = {
  _class_name: 'AutoencoderKL',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: Array(4).fill('DownEncoderBlock2D'),
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
  up_block_types: Array(4).fill('UpDecoderBlock2D'),
};
const SD15_SCHEDULER_JSON = {
  _class_name: 'PNDMScheduler',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
};

describe('Leffa from a diffusers folder (LeffaModel.build_models)', () => {
  it("the released folders' configs give LEFFA_CONFIGS.sd15 and .sdxl", () => {
    const sd15 = leffaConfigFromDiffusers(
      { unet: SD15_UNET_JSON, vae: VAE_JSON, scheduler: SD15_SCHEDULER_JSON },
      { sdxl: false },
    );
    expect(sd15.unet).toEqual({ ...SD15_UNET, inChannels: 9, useLinearProjection: false });
    expect(sd15.vae).toEqual(LEFFA_CONFIGS.sd15.vae);
    expect(sd15.schedule).toEqual(SD15_SCHEDULE);
    const sdxl = leffaConfigFromDiffusers(
      {
        unet: SDXL_UNET_JSON,
        vae: { ...VAE_JSON, scaling_factor: 0.13025 },
        scheduler: { ...SD15_SCHEDULER_JSON, _class_name: 'EulerDiscreteScheduler', timestep_spacing: 'leading' },
      },
      { sdxl: true },
    );
    expect(sdxl.unet).toEqual(SDXL_UNET);
    expect(sdxl.vae).toEqual(LEFFA_CONFIGS.sdxl.vae);
    expect(sdxl.schedule).toEqual(SDXL_SCHEDULE);
  });

  it('refuses settings it does not implement, naming the file and key', () => {
    expect(() => unetConfigFromDiffusers({ ...SD15_UNET_JSON, resnet_time_scale_shift: 'scale_shift' })).toThrow(
      /unet\/config.json: 'resnet_time_scale_shift' is "scale_shift"; this library implements "default" only/,
    );
    expect(() => unetConfigFromDiffusers({ ...SD15_UNET_JSON, down_block_types: ['AttnDownBlock2D'] })).toThrow(
      /'down_block_types' must be a list of CrossAttnDownBlock2D \/ DownBlock2D/,
    );
    expect(() => vaeConfigFromDiffusers({ ...VAE_JSON, block_out_channels: undefined })).toThrow(
      /4 down_block_types for 1 block_out_channels/,
    );
    expect(() => scheduleFromDiffusers({ beta_schedule: 'sigmoid' }, false)).toThrow(
      /beta_schedule 'sigmoid' is not supported/,
    );
    expect(() =>
      leffaConfigFromDiffusers(
        { unet: { ...SD15_UNET_JSON, addition_embed_type: 'image' }, vae: VAE_JSON, scheduler: {} },
        { sdxl: false, folder: 'ckpts/sd' },
      ),
    ).toThrow(/ckpts\/sd\/unet\/config.json: addition_embed_type "image" is not supported/);
  });
});
