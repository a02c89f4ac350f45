import * as T from '@leffa-webgpu/core';
import { LeffaModel } from '@leffa-webgpu/models';
import { leffaConfigOf, resolveCheckpoint } from '../assets.js';

/**
 * Writes an inference-only copy of a Leffa training checkpoint: the EMA weights when the run kept them
 * (`--ema`), else the raw weights, stored as float16, without optimizer state.
 */
export async function exportCheckpoint(args: { ckpt: string; out: string; ema: boolean }): Promise<void> {
  await T.init();
  const dir = resolveCheckpoint(args.ckpt);
  const config = leffaConfigOf(dir);
  const model = new LeffaModel(config);
  const extra = (await T.loadCheckpoint(dir, { model })) as Record<string, unknown>;
  if (args.ema) {
    const shadows = await T.loadSafetensors(`${dir}/ema.safetensors`);
    // EMA files hold trained parameters only; the frozen VAE keeps the weights loaded above.
    model.loadStateDict(shadows, { strict: false });
  }
  await T.saveCheckpoint(args.out, { model, modelDtype: 'F16', extra: { exportedFrom: args.ckpt, ema: args.ema, step: extra.step, task: extra.task, size: extra.size, config } });
  console.log(`wrote ${args.out} (${(model.numParameters() / 1e6).toFixed(2)}M parameters, float16)`);
}
