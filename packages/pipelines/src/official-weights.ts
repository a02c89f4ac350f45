/**
 * Node: the models of the CLI and the library from single weights files as their authors released them,
 * rather than this project's checkpoint folders:
 *
 * - pytorch-openpose's `body_pose_model.pth` -> `OpenPoseBody(OPENPOSE_BODY)`;
 * - SCHP's `exp-schp-201908261155-lip.pth` (and the ATR / Pascal-Person-Part ones) -> `SCHPNetwork` with
 *   `SCHP_CONFIGS.resnet101_lip | _atr | _pascal`, picked from the number of classes in the file;
 * - Leffa's `virtual_tryon.pth` (stable-diffusion-inpainting) -> `LeffaModel(LEFFA_CONFIGS.sd15)` and
 *   `pose_transfer.pth` (stable-diffusion-xl-1.0-inpainting-0.1) -> `LeffaModel(LEFFA_CONFIGS.sdxl)`, told apart by
 *   the state dict's keys (or the same state dicts as `.safetensors`).
 *
 * `.pth`, `.pt` and `.bin` are read as torch.save files, zip or pre-1.6 legacy format (`T.loadPth`: no code is
 * ever run), `.safetensors` with `T.loadSafetensors`. The file's keys are mapped onto ours by the explicit tables below, then loaded
 * strictly: any missing, unexpected or wrong-shaped key fails with `Module.loadStateDict`'s list of them.
 * Every loader takes a `config` override (other sizes of the same architecture, e.g. the small test configs).
 */
import { existsSync, statSync } from 'node:fs';
import * as T from '@leffa-webgpu/core';
import {
  convertLegacyVaeKeys,
  DENSEPOSE_CONFIGS,
  type DensePoseConfig,
  DensePoseHead,
  LEFFA_CONFIGS,
  type LeffaConfig,
  LeffaModel,
  OPENPOSE_BODY,
  type OpenPoseConfig,
  OpenPoseBody,
  SCHP_CONFIGS,
  type SCHPConfig,
  SCHPNetwork,
  schpKeys,
} from '@leffa-webgpu/models';

/** File name endings read as weights files: torch.save archives, then safetensors. */
export const WEIGHTS_FILE_EXTENSIONS = ['.pth', '.pt', '.bin', '.safetensors'] as const;

const extensionOf = (path: string) => WEIGHTS_FILE_EXTENSIONS.find((e) => path.toLowerCase().endsWith(e));

/**
 * Whether `ckpt` names a weights file rather than a checkpoint folder: its name ends in .pth, .pt, .bin or
 * .safetensors and it is not a directory (a missing file counts, so that loading it reports the file).
 */
export function isWeightsFile(ckpt: string): boolean {
  return extensionOf(ckpt) !== undefined && !(existsSync(ckpt) && statSync(ckpt).isDirectory());
}

/**
 * Reads a weights file's tensors onto the device (initialising it first), or into host memory with `load.host`,
 * keys as in the file; `load` picks float dtypes.
 */
export async function readWeightsFile(path: string, load: T.TensorLoad = {}): Promise<Map<string, T.Tensor>> {
  const ext = extensionOf(path);
  if (!ext)
    throw new Error(
      `'${path}' is not a weights file: expected a .pth, .pt or .bin (torch.save) or a .safetensors file`,
    );
  if (!existsSync(path)) throw new Error(`weights file '${path}' does not exist`);
  if (!statSync(path).isFile()) throw new Error(`weights file '${path}' is not a regular file`);
  await T.init();
  return ext === '.safetensors' ? T.loadSafetensors(path, load) : T.loadPth(path, load);
}

/** Renames a state dict's keys; two file keys landing on the same name is an error naming both. */
function renameKeys(
  dict: Map<string, T.Tensor>,
  rename: (key: string) => string,
  source: string,
): Map<string, T.Tensor> {
  const out = new Map<string, T.Tensor>();
  const from = new Map<string, string>();
  for (const [key, t] of dict) {
    const name = rename(key);
    if (from.has(name)) throw new Error(`${source}: '${from.get(name)}' and '${key}' both map to '${name}'`);
    from.set(name, key);
    out.set(name, t);
  }
  return out;
}

/** A single key through one of the models package's whole-dict key converters (schpKeys, convertLegacyVaeKeys). */
const convertKey = (convert: (dict: Map<string, null>) => Map<string, null>, key: string): string =>
  convert(new Map([[key, null]]))
    .keys()
    .next().value!;

/** Strict load of mapped weights into a freshly built model (disposed again when mapping or loading fails). */
function loadStrict<M extends T.Module>(
  model: M,
  mapped: () => Map<string, T.Tensor>,
  source: string,
  what: string,
): M {
  let dict: Map<string, T.Tensor>;
  try {
    dict = mapped();
  } catch (e) {
    model.dispose();
    throw e;
  }
  try {
    model.loadStateDict(dict, { strict: true });
    return model;
  } catch (e) {
    model.dispose();
    throw new Error(
      `${source}: the weights do not fit ${what} (keys as mapped from the file)\n${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** Reads a weights file, hands its tensors to `use` (which maps and loads them), then releases the file's tensors. */
async function withFile<R>(
  path: string,
  use: (dict: Map<string, T.Tensor>) => R | Promise<R>,
  load: T.TensorLoad = {},
): Promise<R> {
  const dict = await readWeightsFile(path, load);
  try {
    return await use(dict);
  } finally {
    // Loaded models hold their own references to the storages.
    T.dispose([...dict.values()]);
  }
}

// ---------------------------------------------------------------- OpenPose

/**
 * pytorch-openpose's bodypose_model puts each convolution in a block: `model0` (the VGG front, conv1_1 ...
 * conv4_4_CPM), `model1_1` / `model1_2` (stage 1: conv5_*_CPM_L1 / _L2), `modelS_1` / `modelS_2` (stage S >= 2:
 * Mconv*_stageS_L1 / _L2). Its body_pose_model.pth has the keys without that block (conv1_1.weight,
 * Mconv1_stage2_L1.weight), which util.transfer() adds back. OpenPoseBody uses the file's flat names.
 */
function openPoseBlockOf(conv: string): string {
  const stage1 = /^conv5_[1-5]_CPM_L([12])$/.exec(conv);
  if (stage1) return `model1_${stage1[1]}`;
  const later = /^Mconv[1-7]_stage([2-9])_L([12])$/.exec(conv);
  if (later) return `model${later[1]}_${later[2]}`;
  if (/^conv[1-4]_[1-4](_CPM)?$/.test(conv)) return 'model0';
  throw new Error(`openpose: no pytorch-openpose block for convolution '${conv}'`);
}

/**
 * Every key a body-model weights file may use -> OpenPoseBody's key, for each of the model's keys (pass
 * `model.stateDict().keys()`): body_pose_model.pth's flat key (the same as ours) and the module layout's
 * `model0.` / `modelS_B.` one. Keys outside the table are left as they are (and reported as unexpected).
 */
export function openPoseKeyTable(keys: Iterable<string>): Map<string, string> {
  const table = new Map<string, string>();
  for (const key of keys) {
    table.set(key, key);
    table.set(`${openPoseBlockOf(key.slice(0, key.lastIndexOf('.')))}.${key}`, key);
  }
  return table;
}

/** The OpenPose body model (eval mode) from body_pose_model.pth; `config` defaults to the official size. */
export async function loadOpenPoseWeights(
  path: string,
  options: { config?: OpenPoseConfig } = {},
): Promise<OpenPoseBody> {
  const config = options.config ?? OPENPOSE_BODY;
  return withFile(path, (dict) => {
    const model = T.nn.withoutInit(() => new OpenPoseBody(config)).eval();
    const mapped = () => {
      const table = openPoseKeyTable(model.stateDict().keys());
      return renameKeys(dict, (k) => table.get(k) ?? k, path);
    };
    return loadStrict(
      model,
      mapped,
      path,
      `OpenPoseBody(${config === OPENPOSE_BODY ? 'OPENPOSE_BODY' : JSON.stringify(config)})`,
    );
  });
}

// ---------------------------------------------------------------- SCHP

/** The released SCHP models: dataset, classes and the input size of SCHP's own extractor. */
export const SCHP_OFFICIAL_MODELS = [
  { name: 'resnet101_lip', dataset: 'LIP', classes: 20, inputSize: [473, 473] },
  { name: 'resnet101_atr', dataset: 'ATR', classes: 18, inputSize: [512, 512] },
  { name: 'resnet101_pascal', dataset: 'Pascal-Person-Part', classes: 7, inputSize: [512, 512] },
] as const satisfies readonly {
  name: keyof typeof SCHP_CONFIGS;
  dataset: string;
  classes: number;
  inputSize: readonly [number, number];
}[];

/** The fusion head's classifier (a 1x1 convolution to the classes): its weight's first dimension is the class count. */
export const SCHP_CLASSIFIER_KEY = 'fushion.3.weight';

/**
 * Which released SCHP model a state dict (keys without `module.`) is, from its class count: 20 LIP, 18 ATR,
 * 7 Pascal-Person-Part.
 */
export function officialSchpModel(
  shapes: Map<string, readonly number[]>,
  source = 'schp',
): { name: string; dataset: string; config: SCHPConfig; classes: number; inputSize: [number, number] } {
  const shape = shapes.get(SCHP_CLASSIFIER_KEY);
  if (!shape)
    throw new Error(
      `${source}: no '${SCHP_CLASSIFIER_KEY}' (SCHP's fusion classifier, 'module.${SCHP_CLASSIFIER_KEY}' in the official files), so this is not an SCHP checkpoint`,
    );
  const classes = shape[0]!;
  const found = SCHP_OFFICIAL_MODELS.find((m) => m.classes === classes);
  if (!found) {
    const known = SCHP_OFFICIAL_MODELS.map((m) => `${m.classes} (${m.dataset})`).join(', ');
    throw new Error(`${source}: the SCHP classifier has ${classes} classes; the released models have ${known}`);
  }
  return {
    name: found.name,
    dataset: found.dataset,
    config: SCHP_CONFIGS[found.name],
    classes,
    inputSize: [...found.inputSize],
  };
}

export interface SchpWeightsOptions {
  /** Architecture (default: the ResNet-101 config of the class count). */
  config?: SCHPConfig;
  /** Network input [H, W] (default: 473x473 for LIP's class count, 512x512 for ATR's and Pascal's). */
  inputSize?: [number, number];
}

/**
 * An SCHP parser (eval mode) from an official checkpoint ({'state_dict': {'module.conv1.weight': ...}}): the
 * `module.` prefix is stripped, the config and input size follow the class count. The file holds one set of
 * weights, returned as the network (`aggregate: false`).
 */
export async function loadSchpWeights(
  path: string,
  options: SchpWeightsOptions = {},
): Promise<{ model: SCHPNetwork; aggregate: false; inputSize: [number, number] }> {
  return withFile(path, (dict) => {
    const mapped = renameKeys(dict, (k) => convertKey(schpKeys, k), path);
    const shapes = new Map([...mapped].map(([k, t]) => [k, t.shape]));
    const official = options.config && options.inputSize ? null : officialSchpModel(shapes, path);
    const config = options.config ?? official!.config;
    const model = T.nn.withoutInit(() => new SCHPNetwork(config)).eval();
    const what = options.config
      ? `SCHPNetwork(${JSON.stringify(config)})`
      : `SCHPNetwork(SCHP_CONFIGS.${official!.name})`;
    loadStrict(model, () => mapped, path, what);
    return { model, aggregate: false, inputSize: options.inputSize ?? official!.inputSize };
  });
}

// ---------------------------------------------------------------- DensePose

/**
 * The DensePose-style head (eval mode) from a plain state dict of it (no official release has this
 * architecture): the config is the DENSEPOSE_CONFIGS entry whose stem width matches `conv1.weight`, unless given.
 */
export async function loadDensePoseWeights(
  path: string,
  options: { config?: DensePoseConfig; size?: [number, number] } = {},
): Promise<{ model: DensePoseHead; size?: [number, number] }> {
  return withFile(path, (dict) => {
    let config = options.config;
    let name = 'config';
    if (!config) {
      const stem = dict.get('conv1.weight')?.shape[0];
      const entry = Object.entries(DENSEPOSE_CONFIGS).find(([, c]) => c.stem[0] === stem);
      if (!entry)
        throw new Error(
          `${path}: 'conv1.weight' ${stem === undefined ? 'is missing' : `has ${stem} channels`}; no DENSEPOSE_CONFIGS entry matches (pass a config)`,
        );
      [name, config] = [`DENSEPOSE_CONFIGS.${entry[0]}`, entry[1]];
    }
    const model = T.nn.withoutInit(() => new DensePoseHead(config)).eval();
    loadStrict(model, () => dict, path, `DensePoseHead(${options.config ? JSON.stringify(config) : name})`);
    return { model, ...(options.size ? { size: options.size } : {}) };
  });
}

// ---------------------------------------------------------------- Leffa

/**
 * Leffa's state dicts hold `vae.*`, `unet_encoder.*` and `unet.*` under diffusers' names, which LeffaModel
 * uses; only the VAE attention's pre-0.14 diffusers names (query / key / value / proj_attn) are renamed
 * (to_q / to_k / to_v / to_out.0, `convertLegacyVaeKeys`). Other keys pass through.
 */
export function leffaKeys<V>(dict: Map<string, V>, source = 'leffa'): Map<string, V> {
  const out = new Map<string, V>();
  for (const [key, v] of dict) {
    const name = key.startsWith('vae.') ? `vae.${convertKey(convertLegacyVaeKeys, key.slice('vae.'.length))}` : key;
    if (out.has(name))
      throw new Error(`${source}: two tensors map to '${name}' (legacy and current VAE attention names together?)`);
    out.set(name, v);
  }
  return out;
}

/** The key that only SDXL-based Leffa files have: the generative UNet's (unused) added time/text embedding. */
export const LEFFA_SDXL_KEY = 'unet.add_embedding.linear_1.weight';

/**
 * Which released Leffa architecture a state dict (keys as mapped by `leffaKeys`) is: `sdxl` (pose_transfer.pth,
 * on stable-diffusion-xl-1.0-inpainting-0.1) when it has SDXL's `add_embedding` (LeffaModel builds its UNets from
 * the SDXL config, so the file holds it although Leffa never uses it), else `sd15` (virtual_tryon.pth). The
 * strict load that follows checks every other key and shape.
 */
export function officialLeffaConfig(
  shapes: Map<string, readonly number[]>,
  source = 'leffa',
): { name: 'sd15' | 'sdxl'; config: LeffaConfig } {
  if (!shapes.has('unet.conv_in.weight'))
    throw new Error(
      `${source}: no 'unet.conv_in.weight' (the generative UNet's input convolution), so this is not a Leffa state dict (vae.*, unet_encoder.*, unet.*)`,
    );
  return shapes.has(LEFFA_SDXL_KEY)
    ? { name: 'sdxl', config: LEFFA_CONFIGS.sdxl }
    : { name: 'sd15', config: LEFFA_CONFIGS.sd15 };
}

export interface LeffaWeightsOptions {
  config?: LeffaConfig;
  dtype?: 'float32' | 'float16';
  /**
   * Called on the built model before its weights load: parts it puts in host memory (`T.nn.offloadToHost`)
   * receive their weights there and never touch the device (`leffaLowMemoryPlacement`).
   */
  beforeLoad?: (model: LeffaModel) => Promise<void> | void;
}

/**
 * A Leffa model (eval mode) from virtual_tryon.pth / pose_transfer.pth or a .safetensors copy; the config is
 * LEFFA_CONFIGS.sd15 or .sdxl as `officialLeffaConfig` tells from the keys, unless given. `dtype: 'float16'`
 * reads the weights as float16 (no float32 copy on the device) into a halved model, as app.py runs Leffa. The
 * file is read into host memory and each weight uploaded as it loads, unless `beforeLoad` put its part in host
 * memory.
 */
export async function loadLeffaWeights(path: string, options: LeffaWeightsOptions = {}): Promise<LeffaModel> {
  const dtype = options.dtype ?? 'float32';
  return withFile(
    path,
    async (dict) => {
      const mapped = leffaKeys(dict, path);
      const official = options.config
        ? null
        : officialLeffaConfig(new Map([...mapped].map(([k, t]) => [k, t.shape])), path);
      const config = options.config ?? official!.config;
      // withoutInit: the weights get the file's values, no initialisation of their own (SDXL's pair of UNets is
      // 5.2B parameters).
      const model = T.nn.withoutInit(() => new LeffaModel(config));
      try {
        if (dtype === 'float16') model.half();
        await options.beforeLoad?.(model);
      } catch (e) {
        model.dispose();
        throw e;
      }
      return loadStrict(
        model,
        () => mapped,
        path,
        official ? `LeffaModel(LEFFA_CONFIGS.${official.name})` : 'LeffaModel(config)',
      ).eval();
    },
    { dtype, host: true },
  );
}
