import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS, LeffaModel } from '@leffa-webgpu/models';
import { resolveCheckpoint } from '../assets.js';

/**
 * Writes an inference-only copy of a Leffa training checkpoint: the EMA weights when the run kept them
 * (`--ema`), else the raw weights, stored as float16, without optimizer state.
 */
export async function exportCheckpoint(args: { ckpt: string; out: string; ema: boolean }): Promise<void> {
  await T.init();
  const model = new LeffaModel(LEFFA_CONFIGS.tiny);
  const extra = (await T.loadCheckpoint(resolveCheckpoint(args.ckpt), { model })) as Record<string, unknown>;
  if (args.ema) {
    const shadows = await T.loadSafetensors(`${resolveCheckpoint(args.ckpt)}/ema.safetensors`);
    // EMA files hold trained parameters only; the frozen VAE keeps the weights loaded above.
    model.loadStateDict(shadows, { strict: false });
  }
  await T.saveCheckpoint(args.out, { model, modelDtype: 'F16', extra: { exportedFrom: args.ckpt, ema: args.ema, step: extra.step, task: extra.task } });
  console.log(`wrote ${args.out} (${(model.numParameters() / 1e6).toFixed(2)}M parameters, float16)`);
}
