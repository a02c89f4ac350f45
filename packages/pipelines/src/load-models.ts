/**
 * Node: the models of the CLI and the photo pipeline from checkpoint folders, `shipped:NAME` naming one of
 * the package's shipped checkpoints, or single weights files as officially released (`.pth`, `.pt`, `.bin`,
 * `.safetensors`: see official-weights.ts). Browsers open URLs with `T.openCheckpointUrl` and model-checkpoints.ts.
 */
import * as T from '@leffa-webgpu/core';
import type { DensePoseHead, LeffaModel, OpenPoseBody, SCHPNetwork } from '@leffa-webgpu/models';
import { resolveCheckpoint } from './assets.js';
import {
  type SchpWeights,
  densePoseFrom,
  leffaFrom,
  openPoseFrom,
  photoModels,
  schpFrom,
} from './model-checkpoints.js';
import {
  isWeightsFile,
  loadDensePoseWeights,
  loadLeffaWeights,
  loadOpenPoseWeights,
  loadSchpWeights,
  type SchpWeightsOptions,
} from './official-weights.js';
import type { PhotoModels } from './photo.js';

export * from './official-weights.js';

/** Opens a checkpoint folder or `shipped:NAME` (initialising the device first). */
export async function openCheckpointFolder(ckpt: string): Promise<T.OpenedCheckpoint> {
  await T.init();
  return T.openCheckpoint(resolveCheckpoint(ckpt));
}

export const loadLeffa = async (ckpt: string): Promise<LeffaModel> =>
  isWeightsFile(ckpt) ? loadLeffaWeights(ckpt) : leffaFrom(await openCheckpointFolder(ckpt));
export const loadOpenPose = async (ckpt: string): Promise<OpenPoseBody> =>
  isWeightsFile(ckpt) ? loadOpenPoseWeights(ckpt) : openPoseFrom(await openCheckpointFolder(ckpt));
/** `official` applies to weights files only (their config and input size; default from the class count). */
export async function loadSchp(
  ckpt: string,
  weights: SchpWeights = 'auto',
  official: SchpWeightsOptions = {},
): Promise<{ model: SCHPNetwork; aggregate: boolean; inputSize?: [number, number] }> {
  if (!isWeightsFile(ckpt)) return schpFrom(await openCheckpointFolder(ckpt), weights);
  if (weights === 'aggregate')
    throw new Error(
      `schp: '${ckpt}' is a weights file with one set of weights and no separate aggregate; use the network weights (auto)`,
    );
  return loadSchpWeights(ckpt, official);
}
export const loadDensePose = async (ckpt: string): Promise<{ model: DensePoseHead; size?: [number, number] }> =>
  isWeightsFile(ckpt) ? loadDensePoseWeights(ckpt) : densePoseFrom(await openCheckpointFolder(ckpt));

/** The photo pipeline's preprocessing models from checkpoint folders or weights files (SCHP for try-on only). */
export async function loadPhotoModels(ckpts: {
  openpose: string;
  schp?: string;
  densepose: string;
}): Promise<PhotoModels> {
  const openpose = await loadOpenPose(ckpts.openpose);
  const schp = ckpts.schp ? await loadSchp(ckpts.schp) : undefined;
  return photoModels(openpose, await loadDensePose(ckpts.densepose), schp);
}
