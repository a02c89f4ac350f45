/**
 * Node: `loadReleasedLeffa(folder)`, the released Leffa checkpoint folder (huggingface franciszzj/Leffa, what
 * app.py downloads to ./ckpts) as a `ReleasedLeffa` pipeline. The files a model needs are checked before
 * anything loads, and each missing one is named with where it goes in the folder; the models themselves load
 * on first use.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { type DensePosePredictorOptions, type OpenPoseConfig, loadReleasedDensePose } from '@leffa-webgpu/models';
import { type DiffusersConfigs, leffaConfigFromDiffusers } from './diffusers-config.js';
import { loadLeffaHumanParsing } from './leffa-parsing.js';
import { loadLeffaWeights, loadOpenPoseWeights } from './official-weights.js';
import {
  RELEASED_LEFFA_FILES,
  ReleasedLeffa,
  type ReleasedLeffaModel,
  type ReleasedLeffaOptions,
} from './released-leffa.js';

export interface LoadReleasedLeffaOptions extends ReleasedLeffaOptions {
  /** Which model (default viton_hd): virtual_tryon.pth, virtual_tryon_dc.pth or pose_transfer.pth. */
  model?: ReleasedLeffaModel;
  /** Leffa in float16, as app.py runs it (needs the adapter's shader-f16); default float32. */
  half?: boolean;
  /** Architectures of the preprocessing models other than the released ones (small test models). */
  openposeConfig?: OpenPoseConfig;
  densepose?: DensePosePredictorOptions;
}

/** The folder entries `model` needs, relative to the folder: [path, what it is, is a folder]. */
export function releasedLeffaNeeds(model: ReleasedLeffaModel): [string, string, boolean][] {
  const F = RELEASED_LEFFA_FILES;
  const base = model === 'pose_transfer' ? F.sdxl : F.sd15;
  const needs: [string, string, boolean][] = [
    [F[model], `Leffa's ${model} weights`, false],
    [`${base}/unet/config.json`, `the ${base} UNet config (diffusers)`, false],
    [`${base}/vae/config.json`, `the ${base} VAE config (diffusers)`, false],
    [`${base}/scheduler/scheduler_config.json`, `the ${base} scheduler config (diffusers)`, false],
    [F.densepose, 'the DensePose R-CNN (densepose_rcnn_R_50_FPN_s1x)', false],
  ];
  if (model !== 'pose_transfer') {
    needs.push(
      [F.openpose, 'the OpenPose body model', false],
      [F.parsingAtr, 'the ATR human parser', false],
      [F.parsingLip, 'the LIP human parser', false],
    );
  }
  return needs;
}

/** Every missing entry of `model` in `folder`, named with where it goes; nothing when all are there. */
export function missingReleasedLeffaFiles(folder: string, model: ReleasedLeffaModel): string[] {
  return releasedLeffaNeeds(model)
    .filter(([path]) => !(existsSync(join(folder, path)) && statSync(join(folder, path)).isFile()))
    .map(([path, what]) => `${path} (${what}) is missing: put it at ${join(folder, path)}`);
}

function readJson(path: string): Record<string, unknown> {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/**
 * The released pipeline of `options.model` from a folder with the released layout (see RELEASED_LEFFA_FILES).
 * Leffa's architecture comes from the diffusers folder's configs, as LeffaModel builds it, and its weights
 * from the .pth, strictly.
 */
export async function loadReleasedLeffa(
  folder: string,
  options: LoadReleasedLeffaOptions = {},
): Promise<ReleasedLeffa> {
  const model = options.model ?? 'viton_hd';
  if (!(model in { viton_hd: 1, dress_code: 1, pose_transfer: 1 }))
    throw new Error(`loadReleasedLeffa: model must be viton_hd, dress_code or pose_transfer, got '${model}'`);
  if (!existsSync(folder) || !statSync(folder).isDirectory())
    throw new Error(
      `loadReleasedLeffa: '${folder}' is not a folder (expected the released Leffa checkpoints, laid out as huggingface franciszzj/Leffa)`,
    );
  const missing = missingReleasedLeffaFiles(folder, model);
  if (missing.length)
    throw new Error(
      `loadReleasedLeffa: the ${model} pipeline needs ${missing.length} more file(s) in '${folder}':\n  ${missing.join('\n  ')}`,
    );
  const at = (p: string) => join(folder, p);
  const F = RELEASED_LEFFA_FILES;
  const base = model === 'pose_transfer' ? F.sdxl : F.sd15;
  return new ReleasedLeffa(
    model,
    {
      leffa: async (request) => {
        const configs: DiffusersConfigs = {
          unet: readJson(at(`${base}/unet/config.json`)),
          vae: readJson(at(`${base}/vae/config.json`)),
          scheduler: readJson(at(`${base}/scheduler/scheduler_config.json`)),
        };
        const config = leffaConfigFromDiffusers(configs, { sdxl: model === 'pose_transfer', folder: at(base) });
        return loadLeffaWeights(at(F[model]), {
          config,
          ...(options.half ? { dtype: 'float16' as const } : {}),
          ...(request?.beforeLoad ? { beforeLoad: request.beforeLoad } : {}),
        });
      },
      densepose: async () => {
        await T.init();
        return loadReleasedDensePose(at(F.densepose), options.densepose ?? {});
      },
      ...(model === 'pose_transfer'
        ? {}
        : {
            parsing: () => loadLeffaHumanParsing(at(F.parsingAtr), at(F.parsingLip)),
            openpose: () =>
              loadOpenPoseWeights(at(F.openpose), options.openposeConfig ? { config: options.openposeConfig } : {}),
          }),
    },
    options.size ? { size: options.size } : {},
  );
}
