import * as T from '@leffa-webgpu/core';
import { AutoencoderKL, decoderChannels, type LeffaConfig, LeffaModel, type VaeConfig } from '@leffa-webgpu/models';
import {
  densePoseFrom,
  leffaConfigFromExtra,
  leffaFrom,
  openCheckpointFolder,
  openPoseFrom,
  schpFrom,
  type SchpWeights,
} from '@leffa-webgpu/pipelines';
import { trainableParameters } from '../leffa/trainer.js';

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
  /** Leffa: a train-vae checkpoint whose decoder replaces the model's (its encoder must be the model's own). */
  decoderFrom?: string;
}): Promise<void> {
  const opened = await openCheckpointFolder(args.ckpt);
  const extra = (opened.extra as Record<string, unknown> | null) ?? {};
  const kept = Object.fromEntries(KEPT.filter((k) => extra[k] !== undefined).map((k) => [k, extra[k]]));
  for (const [flag, given] of [
    ['--ema', args.ema],
    ['--decoder-from', args.decoderFrom !== undefined],
  ] as const) {
    if (given && extra.kind !== undefined && extra.kind !== 'leffa')
      throw new Error(`export: ${flag} is for Leffa checkpoints; '${args.ckpt}' is a '${String(extra.kind)}' one`);
  }
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
    let config = leffaConfigFromExtra(extra);
    let leffa = await leffaFrom(opened);
    if (args.ema) {
      const file = `${opened.source}/ema.safetensors`;
      const shadows = emaByModelNames(leffa, await T.loadSafetensors(file));
      // A strict load, so a file that misses or misshapes a trained parameter is refused rather than half-applied;
      // EMA files hold trained parameters only, so the frozen VAE keeps the weights loaded above.
      try {
        leffa.loadStateDict(shadows, { ignore: (key) => key.startsWith('vae.') && !shadows.has(key) });
      } catch (e) {
        throw new Error(`export --ema: '${file}': ${(e as Error).message}`);
      }
    }
    if (args.decoderFrom) {
      ({ leffa, config } = await withDecoderFrom(leffa, config, args.decoderFrom));
      describe = { decoderFrom: args.decoderFrom };
    }
    model = leffa;
    describe = { ...describe, ema: args.ema, config };
  }
  await T.saveCheckpoint(args.out, {
    model,
    modelDtype: 'F16',
    extra: { exportedFrom: args.ckpt, ...kept, ...describe, ...args.note },
  });
  console.log(`wrote ${args.out} (${(model.numParameters() / 1e6).toFixed(2)}M parameters, float16)`);
}

/** Largest |a - b| / max(1, |b|) over the encoder side of two VAEs' state dicts (encoder and quant_conv), on the host. */
async function encoderDifference(a: AutoencoderKL, b: AutoencoderKL): Promise<number> {
  const theirs = b.stateDict();
  let worst = 0;
  for (const [key, t] of a.stateDict()) {
    if (!(key.startsWith('encoder.') || key.startsWith('quant_conv.'))) continue;
    const other = theirs.get(key);
    if (!other || other.shape.join() !== t.shape.join()) return Number.POSITIVE_INFINITY;
    const [x, y] = await Promise.all([t.data(), other.data()]);
    for (let i = 0; i < x.length; i++)
      worst = Math.max(worst, Math.abs(Number(x[i]) - Number(y[i])) / Math.max(1, Math.abs(Number(y[i]))));
  }
  return worst;
}

/**
 * The Leffa model rebuilt with the decoder (and post_quant_conv) of a train-vae checkpoint trained for its
 * encoder (`train-vae --init <its VAE> --decoder-only`): the latents, and so the UNets, are unchanged. The
 * checkpoint's encoder must equal the model's within float16 rounding, or its latents would not be the UNets'.
 */
async function withDecoderFrom(
  leffa: LeffaModel,
  config: LeffaConfig,
  source: string,
): Promise<{ leffa: LeffaModel; config: LeffaConfig }> {
  const opened = await openCheckpointFolder(source);
  const vaeConfig = (opened.extra as { config?: VaeConfig } | null)?.config;
  if (!vaeConfig || !('latentChannels' in vaeConfig))
    throw new Error(`export: --decoder-from '${source}' records no VAE config: is it a train-vae checkpoint?`);
  const vae = new AutoencoderKL(vaeConfig);
  await opened.load({ model: vae });
  // float16 rounds by under 5e-4 relative; a retrained encoder moves far more.
  const diff = await encoderDifference(leffa.vae, vae);
  if (!(diff <= 1e-3))
    throw new Error(
      `export: --decoder-from '${source}' has another encoder than the model's VAE (largest weight difference ${diff}); train it with train-vae --init <the model's VAE> --decoder-only`,
    );
  const merged: LeffaConfig = {
    ...config,
    vae: { ...config.vae, decoderBlockOutChannels: decoderChannels(vaeConfig) },
  };
  const rebuilt = new LeffaModel(merged);
  const weights = new Map([...leffa.stateDict()].filter(([k]) => !k.startsWith('vae.')));
  for (const [k, t] of vae.stateDict()) weights.set(`vae.${k}`, t);
  rebuilt.loadStateDict(weights);
  T.dispose([...leffa.parameters(), ...vae.parameters()]);
  return { leffa: rebuilt.eval(), config: merged };
}

/**
 * An EMA file's shadows under the model's parameter names. Checkpoints written before the EMA was named keyed the
 * shadows by position ('0', '1', ...) in the trainer's order, mapped back here.
 */
function emaByModelNames(leffa: LeffaModel, shadows: Map<string, T.Tensor>): Map<string, T.Tensor> {
  const names = [...trainableParameters(leffa).keys()];
  const positional = shadows.size === names.length && [...shadows.keys()].every((key, i) => key === String(i));
  return positional ? new Map([...shadows.values()].map((t, i) => [names[i]!, t])) : shadows;
}
