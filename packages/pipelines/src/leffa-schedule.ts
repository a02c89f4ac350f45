/**
 * A memory-saving schedule for Leffa sampling: only the model part the current phase runs is on the device,
 * the others wait in host memory (diffusers' enable_model_cpu_offload, applied to Leffa's four parts). The
 * weights go back and forth bit for bit, so the result is that of the normal schedule.
 *
 * Phases (leffaSample's LeffaPhase): 'encode' needs the VAE encoder, 'reference' the reference UNet, 'denoise'
 * the generative UNet, 'decode' the VAE decoder. Leffa's released pipeline runs the reference UNet at every
 * step unless ref_acceleration runs it once at the middle timestep; so without it both UNets come back once per
 * step (two uploads of a UNet per step), with it the reference UNet leaves for good after its single pass.
 *
 * Loading fits the same budget: `leffaLowMemoryPlacement`, given to loadLeffaWeights' `beforeLoad`, puts every
 * part but the first phase's in host memory before the weights load, so theirs load there and first reach the
 * device when their phase starts.
 */
import * as T from '@leffa-webgpu/core';
import type { LeffaModel, LeffaPhase } from '@leffa-webgpu/models';

type Part = 'encoder' | 'reference' | 'generative' | 'decoder';

const PART_OF: Record<LeffaPhase, Part> = {
  encode: 'encoder',
  reference: 'reference',
  denoise: 'generative',
  decode: 'decoder',
};

export interface LeffaOffloadSchedule {
  /** For leffaSample's `beforePhase`: moves the phase's part onto the device and every other part off it. */
  beforePhase(phase: LeffaPhase): Promise<void>;
  /** Puts every part back on the device (the model is whole again), keeping no host copies. */
  restore(): void;
}

/**
 * The offload schedule for `model`: parts in host memory (offloaded, or loaded there) are uploaded when their
 * phase starts, the others leave the device then.
 */
export function leffaOffloadSchedule(model: LeffaModel): LeffaOffloadSchedule {
  const parts: Record<Part, T.Module[]> = {
    encoder: [model.vae.encoder, model.vae.quant_conv],
    reference: [model.unet_encoder],
    generative: [model.unet],
    decoder: [model.vae.decoder, model.vae.post_quant_conv],
  };
  const all = Object.values(parts).flat();
  return {
    async beforePhase(phase) {
      const needed = new Set(parts[PART_OF[phase]]);
      let freed = false;
      for (const m of all) {
        if (needed.has(m) || T.nn.isOffloaded(m)) continue;
        await T.nn.offloadToHost(m);
        freed = true;
      }
      if (freed) {
        // The freed buffers stay cached in the pool: give them back to the driver (once nothing queued uses
        // them), so that the device holds this phase's part and activations only.
        await T.sync();
        T.activeDevice().pool.emptyCache();
      }
      for (const m of needed) T.nn.reloadFromHost(m);
    },
    restore() {
      for (const m of all) {
        T.nn.reloadFromHost(m);
        T.nn.dropHostCopy(m);
      }
    },
  };
}

/** The phase leffaSample runs first. */
const FIRST_PHASE: LeffaPhase = 'encode';

/**
 * For a model built but not yet loaded (loadLeffaWeights' `beforeLoad`): every part but the first phase's (the
 * VAE encoder) goes to host memory, so that their weights load there and the device holds only what the first
 * phase runs.
 */
export async function leffaLowMemoryPlacement(model: LeffaModel): Promise<void> {
  await leffaOffloadSchedule(model).beforePhase(FIRST_PHASE);
}
