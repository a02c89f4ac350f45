import * as T from '@leffa-webgpu/core';
import {
  densePoseFrom,
  leffaConfigFromExtra,
  leffaFrom,
  openCheckpointFolder,
  openPoseFrom,
  schpFrom,
  type SchpWeights,
} from '@leffa-webgpu/pipelines';

/** Training-run fields an inference copy keeps in its state.json (the rest is resume state). */
const KEPT = ['kind', 'step', 'task', 'size', 'config', 'rounds', 'labelNoise', 'pck02'] as const;

/**
 * Writes an inference-only float16 copy of a training checkpoint, without optimizer state. Leffa: the EMA
 * weights with `ema`, else the raw ones. SCHP: the self-correction aggregate when a round ran (as `parse` and the
 * photo pipeline pick) unless `schpWeights` says 'network', stored as the model itself. OpenPose and DensePose: the trained weights.
 */
export async function exportCheckpoint(args: {
  ckpt: string;
  out: string;
  ema: boolean;
  schpWeights?: SchpWeights;
  note?: Record<string, unknown>;
}): Promise<void> {
  const opened = await openCheckpointFolder(args.ckpt);
  const extra = (opened.extra as Record<string, unknown> | null) ?? {};
  const kept = Object.fromEntries(KEPT.filter((k) => extra[k] !== undefined).map((k) => [k, extra[k]]));
  if (args.ema && extra.kind !== undefined && extra.kind !== 'leffa')
    throw new Error(`export: --ema is for Leffa checkpoints; '${args.ckpt}' is a '${String(extra.kind)}' one`);
  let model: T.Module;
  let describe: Record<string, unknown> = {};
  if (extra.kind === 'schp') {
    const schp = await schpFrom(opened, args.schpWeights ?? 'auto');
    model = schp.model;
    // The chosen weights are now the model; a reader must not look for a second slot.
    describe = { rounds: 0, ...(schp.aggregate ? { aggregateOfRounds: extra.rounds ?? 0 } : { weights: 'network' }) };
  } else if (extra.kind === 'densepose') {
    model = (await densePoseFrom(opened)).model;
  } else if (extra.kind === 'openpose' || extra.pck02 !== undefined) {
    // OpenPose runs say so; the first shipped OpenPose export only records its PCK.
    model = await openPoseFrom(opened);
  } else {
    const config = leffaConfigFromExtra(extra);
    const leffa = await leffaFrom(opened);
    if (args.ema) {
      const shadows = await T.loadSafetensors(`${opened.source}/ema.safetensors`);
      // EMA files hold trained parameters only; the frozen VAE keeps the weights loaded above.
      leffa.loadStateDict(shadows, { strict: false });
    }
    model = leffa;
    describe = { ema: args.ema, config };
  }
  await T.saveCheckpoint(args.out, {
    model,
    modelDtype: 'F16',
    extra: { exportedFrom: args.ckpt, ...kept, ...describe, ...args.note },
  });
  console.log(`wrote ${args.out} (${(model.numParameters() / 1e6).toFixed(2)}M parameters, float16)`);
}
