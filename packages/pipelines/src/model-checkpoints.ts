/**
 * Models from opened checkpoints (`T.openCheckpoint` for a folder in Node, `T.openCheckpointUrl` in a
 * browser): each checkpoint's state.json says which architecture it was written with and at what size it was
 * trained, so the same loaders serve the CLI, the library and the browser example.
 */
import * as T from '@leffa-webgpu/core';
import {
  DENSEPOSE_CONFIGS,
  type DensePoseConfig,
  DensePoseHead,
  LEFFA_CONFIGS,
  type LeffaConfig,
  LeffaModel,
  openPoseConfigFrom,
  type OpenPoseConfig,
  OpenPoseBody,
  SCHP_CONFIGS,
  type SCHPConfig,
  SCHPNetwork,
} from '@leffa-webgpu/models';
import type { PhotoModels } from './photo.js';

const extraOf = (ckpt: T.OpenedCheckpoint): Record<string, unknown> =>
  (ckpt.extra as Record<string, unknown> | null) ?? {};

/** Rejects a checkpoint that says it holds another kind of model (older checkpoints may not say). */
function checkKind(ckpt: T.OpenedCheckpoint, kind: string, what: string): Record<string, unknown> {
  const extra = extraOf(ckpt);
  if (extra.kind !== undefined && extra.kind !== kind)
    throw new Error(`${what}: '${ckpt.source}' is a '${String(extra.kind)}' checkpoint, not a ${kind} one`);
  return extra;
}

/** The Leffa architecture of a checkpoint: training runs keep it in their options, exports as `config`; else tiny. */
export function leffaConfigFromExtra(extra: unknown): LeffaConfig {
  const e = extra as { config?: LeffaConfig; options?: { config?: LeffaConfig } } | null;
  return e?.config ?? e?.options?.config ?? LEFFA_CONFIGS.tiny;
}

/** A Leffa model in eval mode. */
export async function leffaFrom(ckpt: T.OpenedCheckpoint): Promise<LeffaModel> {
  const model = new LeffaModel(leffaConfigFromExtra(ckpt.extra));
  await ckpt.load({ model });
  return model.eval();
}

/** An OpenPose body network in eval mode (small config unless the checkpoint records another; see openPoseConfigFrom for older records). */
export async function openPoseFrom(ckpt: T.OpenedCheckpoint): Promise<OpenPoseBody> {
  const extra = checkKind(ckpt, 'openpose', 'openpose');
  const model = T.nn
    .withoutInit(() => new OpenPoseBody(openPoseConfigFrom(extra.config as Partial<OpenPoseConfig> | undefined)))
    .eval();
  await ckpt.load({ model });
  return model;
}

/** Which SCHP weights to use: the self-correction aggregate when a round ran ('auto'), or one of the two. */
export type SchpWeights = 'auto' | 'network' | 'aggregate';

/** An SCHP parser in eval mode, whether it is the aggregate, and its training size. Training checkpoints keep the aggregate in the EMA slot. */
export async function schpFrom(
  ckpt: T.OpenedCheckpoint,
  weights: SchpWeights = 'auto',
): Promise<{ model: SCHPNetwork; aggregate: boolean; inputSize?: [number, number] }> {
  const extra = checkKind(ckpt, 'schp', 'schp');
  const rounds = (extra.rounds as number | undefined) ?? 0;
  if (weights === 'aggregate' && rounds < 1)
    throw new Error(
      `schp: '${ckpt.source}' has no aggregated model (no self-correction round ran); use the network weights`,
    );
  const model = T.nn
    .withoutInit(() => new SCHPNetwork((extra.config as SCHPConfig | undefined) ?? SCHP_CONFIGS.small))
    .eval();
  const aggregate = weights === 'aggregate' || (weights === 'auto' && rounds >= 1);
  // Loading the aggregate after the network overwrites every tensor of it.
  await ckpt.load(aggregate ? { model, ema: schpPart(model) } : { model });
  const size = extra.size as [number, number] | undefined;
  return { model, aggregate, ...(size ? { inputSize: size } : {}) };
}

/** A DensePose head in eval mode and its training size. */
export async function densePoseFrom(
  ckpt: T.OpenedCheckpoint,
): Promise<{ model: DensePoseHead; size?: [number, number] }> {
  const extra = checkKind(ckpt, 'densepose', 'densepose');
  const model = T.nn
    .withoutInit(() => new DensePoseHead((extra.config as DensePoseConfig | undefined) ?? DENSEPOSE_CONFIGS.small))
    .eval();
  await ckpt.load({ model });
  const size = extra.size as [number, number] | undefined;
  return { model, ...(size ? { size } : {}) };
}

/** The photo pipeline's preprocessing networks, with the sizes their checkpoints were trained at. */
export function photoModels(
  openpose: OpenPoseBody,
  densepose: { model: DensePoseHead; size?: [number, number] },
  schp?: { model: SCHPNetwork; inputSize?: [number, number] },
): PhotoModels {
  return {
    openpose,
    densepose: densepose.model,
    ...(densepose.size ? { denseposeSize: densepose.size } : {}),
    ...(schp ? { schp: schp.model, ...(schp.inputSize ? { schpInputSize: schp.inputSize } : {}) } : {}),
  };
}

/** The photo pipeline's preprocessing networks from their checkpoints (SCHP is needed for try-on only). */
export async function photoModelsFrom(ckpts: {
  openpose: T.OpenedCheckpoint;
  schp?: T.OpenedCheckpoint;
  densepose: T.OpenedCheckpoint;
}): Promise<PhotoModels> {
  const openpose = await openPoseFrom(ckpts.openpose);
  const schp = ckpts.schp ? await schpFrom(ckpts.schp) : undefined;
  return photoModels(openpose, await densePoseFrom(ckpts.densepose), schp);
}

/** A whole module's state dict in a checkpoint's second slot (ema.safetensors). */
export function schpPart(m: T.Module): T.StatefulPart {
  return {
    stateDict: () => ({ tensors: m.stateDict(), meta: { kind: 'schp-aggregate' } }),
    loadStateDict: (d) => void m.loadStateDict(d.tensors),
  };
}
