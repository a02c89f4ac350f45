/**
 * The architecture of a Leffa model from a diffusers pipeline folder's config files, as Leffa's LeffaModel
 * builds it (`unet/config.json`, `vae/config.json`, `scheduler/scheduler_config.json` of
 * stable-diffusion-inpainting or stable-diffusion-xl-1.0-inpainting-0.1): both UNets from the UNet config (the
 * input/output channels are replaced), cross-attention removed, the VAE from its config, and the scheduler's
 * betas with `rescale_betas_zero_snr` for the SDXL folder. Settings this library does not implement are refused
 * by name instead of being ignored.
 */
import type {
  DownBlockType,
  LeffaConfig,
  NoiseScheduleConfig,
  UNetConfig,
  UpBlockType,
  VaeConfig,
} from '@leffa-webgpu/models';

type Json = Record<string, unknown>;

/** diffusers settings that must keep their default value here: name -> the default. */
const UNET_DEFAULTS: Record<string, unknown> = {
  center_input_sample: false,
  act_fn: 'silu',
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  dual_cross_attention: false,
  only_cross_attention: false,
  upcast_attention: false,
  resnet_time_scale_shift: 'default',
  class_embed_type: null,
  encoder_hid_dim: null,
  time_embedding_type: 'positional',
  time_cond_proj_dim: null,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
  num_class_embeds: null,
  resnet_skip_time_act: false,
  resnet_out_scale_factor: 1,
  reverse_transformer_layers_per_block: null,
  encoder_hid_dim_type: null,
  time_embedding_act_fn: null,
  timestep_post_act: null,
  class_embeddings_concat: false,
  cross_attention_norm: null,
  mid_block_only_cross_attention: null,
  attention_type: 'default',
};
const VAE_DEFAULTS: Record<string, unknown> = {
  act_fn: 'silu',
  force_upcast: true,
  shift_factor: null,
  latents_mean: null,
  latents_std: null,
  use_quant_conv: true,
  use_post_quant_conv: true,
  mid_block_add_attention: true,
};

function field<V>(json: Json, key: string, source: string, check: (v: unknown) => v is V, what: string, dflt?: V): V {
  const v = json[key] ?? dflt;
  if (v === undefined) throw new Error(`${source}: '${key}' is missing (${what})`);
  if (!check(v)) throw new Error(`${source}: '${key}' must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}
const isInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isStr = (v: unknown): v is string => typeof v === 'string';
const isInts = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every(isInt);
const isIntOrInts = (v: unknown): v is number | number[] => isInt(v) || isInts(v);

function checkDefaults(json: Json, defaults: Record<string, unknown>, source: string): void {
  for (const [key, dflt] of Object.entries(defaults)) {
    // null is diffusers' "not set" for these, i.e. the default.
    if (json[key] != null && JSON.stringify(json[key]) !== JSON.stringify(dflt)) {
      throw new Error(
        `${source}: '${key}' is ${JSON.stringify(json[key])}; this library implements ${JSON.stringify(dflt)} only`,
      );
    }
  }
}

/** diffusers' unet/config.json -> UNetConfig (with Leffa's cross-attention removal). */
export function unetConfigFromDiffusers(json: Json, source = 'unet/config.json'): UNetConfig {
  checkDefaults(json, UNET_DEFAULTS, source);
  const blocks = (key: string, allowed: readonly string[]) =>
    field(
      json,
      key,
      source,
      (v): v is string[] => Array.isArray(v) && v.every((t) => allowed.includes(t as string)),
      `a list of ${allowed.join(' / ')}`,
    );
  const additionType = json.addition_embed_type ?? null;
  if (additionType !== null && additionType !== 'text_time')
    throw new Error(
      `${source}: addition_embed_type ${JSON.stringify(additionType)} is not supported (null or 'text_time')`,
    );
  // diffusers uses attention_head_dim as the head count unless num_attention_heads is given.
  const heads = json.num_attention_heads ?? json.attention_head_dim ?? 8;
  if (!isIntOrInts(heads))
    throw new Error(
      `${source}: 'attention_head_dim' must be a positive integer or a list of them, got ${JSON.stringify(heads)}`,
    );
  const crossDim = field(
    json,
    'cross_attention_dim',
    source,
    isInt,
    'a positive integer (lists are not supported)',
    1280,
  );
  return {
    inChannels: field(json, 'in_channels', source, isInt, 'a positive integer', 4),
    outChannels: field(json, 'out_channels', source, isInt, 'a positive integer', 4),
    blockOutChannels: field(json, 'block_out_channels', source, isInts, 'a list of positive integers'),
    downBlockTypes: blocks('down_block_types', ['CrossAttnDownBlock2D', 'DownBlock2D']) as DownBlockType[],
    upBlockTypes: blocks('up_block_types', ['UpBlock2D', 'CrossAttnUpBlock2D']) as UpBlockType[],
    layersPerBlock: field(json, 'layers_per_block', source, isInt, 'a positive integer', 2),
    attentionHeads: heads,
    crossAttentionDim: crossDim,
    normNumGroups: field(json, 'norm_num_groups', source, isInt, 'a positive integer', 32),
    normEps: field(json, 'norm_eps', source, isNum, 'a number', 1e-5),
    flipSinToCos: field(json, 'flip_sin_to_cos', source, isBool, 'true or false', true),
    freqShift: field(json, 'freq_shift', source, isNum, 'a number', 0),
    transformerLayersPerBlock: field(
      json,
      'transformer_layers_per_block',
      source,
      isIntOrInts,
      'a positive integer or a list of them',
      1,
    ),
    useLinearProjection: field(json, 'use_linear_projection', source, isBool, 'true or false', false),
    ...(additionType === 'text_time'
      ? {
          addition: {
            type: 'text_time' as const,
            timeEmbedDim: field(json, 'addition_time_embed_dim', source, isInt, 'a positive integer'),
            projectionInputDim: field(
              json,
              'projection_class_embeddings_input_dim',
              source,
              isInt,
              'a positive integer',
            ),
          },
        }
      : {}),
    // LeffaModel's remove_cross_attention.
    skipCrossAttention: true,
  };
}

/** diffusers' vae/config.json -> VaeConfig. */
export function vaeConfigFromDiffusers(json: Json, source = 'vae/config.json'): VaeConfig {
  checkDefaults(json, VAE_DEFAULTS, source);
  const types = (key: string, want: string) => {
    const v = json[key];
    if (v !== undefined && !(Array.isArray(v) && v.every((t) => t === want)))
      throw new Error(`${source}: '${key}' must list ${want} only, got ${JSON.stringify(v)}`);
  };
  types('down_block_types', 'DownEncoderBlock2D');
  types('up_block_types', 'UpDecoderBlock2D');
  const boc = field(json, 'block_out_channels', source, isInts, 'a list of positive integers', [64]);
  for (const key of ['down_block_types', 'up_block_types']) {
    const v = json[key] as unknown[] | undefined;
    if (v && v.length !== boc.length)
      throw new Error(`${source}: ${v.length} ${key} for ${boc.length} block_out_channels`);
  }
  return {
    inChannels: field(json, 'in_channels', source, isInt, 'a positive integer', 3),
    outChannels: field(json, 'out_channels', source, isInt, 'a positive integer', 3),
    latentChannels: field(json, 'latent_channels', source, isInt, 'a positive integer', 4),
    blockOutChannels: boc,
    layersPerBlock: field(json, 'layers_per_block', source, isInt, 'a positive integer', 1),
    normNumGroups: field(json, 'norm_num_groups', source, isInt, 'a positive integer', 32),
    scalingFactor: field(json, 'scaling_factor', source, isNum, 'a number', 0.18215),
  };
}

/**
 * scheduler/scheduler_config.json as Leffa loads it into a DDPMScheduler (whatever its _class_name): the
 * betas, spacing and offset from the file, DDPM's defaults for the rest, `rescale_betas_zero_snr` as given
 * (Leffa: true for the SDXL folder).
 */
export function scheduleFromDiffusers(
  json: Json,
  rescaleBetasZeroSnr: boolean,
  source = 'scheduler/scheduler_config.json',
): NoiseScheduleConfig {
  const spacing = field(json, 'timestep_spacing', source, isStr, "'leading', 'trailing' or 'linspace'", 'leading');
  if (!['leading', 'trailing', 'linspace'].includes(spacing))
    throw new Error(`${source}: timestep_spacing '${spacing}' is not one of leading, trailing, linspace`);
  const betaSchedule = field(json, 'beta_schedule', source, isStr, 'a beta schedule name', 'linear');
  if (!['linear', 'scaled_linear', 'squaredcos_cap_v2'].includes(betaSchedule))
    throw new Error(`${source}: beta_schedule '${betaSchedule}' is not supported`);
  if (json.trained_betas != null) throw new Error(`${source}: trained_betas are not supported`);
  const prediction = field(json, 'prediction_type', source, isStr, 'a prediction type', 'epsilon');
  if (!['epsilon', 'v_prediction', 'sample'].includes(prediction))
    throw new Error(`${source}: prediction_type '${prediction}' is not supported`);
  return {
    numTrainTimesteps: field(json, 'num_train_timesteps', source, isInt, 'a positive integer', 1000),
    betaStart: field(json, 'beta_start', source, isNum, 'a number', 0.0001),
    betaEnd: field(json, 'beta_end', source, isNum, 'a number', 0.02),
    betaSchedule: betaSchedule as NoiseScheduleConfig['betaSchedule'],
    predictionType: prediction as NoiseScheduleConfig['predictionType'],
    clipSample: field(json, 'clip_sample', source, isBool, 'true or false', true),
    clipSampleRange: field(json, 'clip_sample_range', source, isNum, 'a number', 1),
    stepsOffset: field(
      json,
      'steps_offset',
      source,
      (v): v is number => Number.isInteger(v) && (v as number) >= 0,
      'an integer >= 0',
      0,
    ),
    timestepSpacing: spacing as NoiseScheduleConfig['timestepSpacing'],
    rescaleBetasZeroSnr,
  };
}

/** The three config files of a diffusers pipeline folder, parsed. */
export interface DiffusersConfigs {
  unet: Json;
  vae: Json;
  scheduler: Json;
}

/** A LeffaConfig from a diffusers folder's configs (`sdxl`: Leffa's zero-terminal-SNR rescale of the betas). */
export function leffaConfigFromDiffusers(
  configs: DiffusersConfigs,
  options: { sdxl: boolean; folder?: string },
): LeffaConfig {
  const at = (file: string) => (options.folder ? `${options.folder}/${file}` : file);
  return {
    vae: vaeConfigFromDiffusers(configs.vae, at('vae/config.json')),
    unet: unetConfigFromDiffusers(configs.unet, at('unet/config.json')),
    schedule: scheduleFromDiffusers(configs.scheduler, options.sdxl, at('scheduler/scheduler_config.json')),
  };
}
