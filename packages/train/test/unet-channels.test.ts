import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS, LeffaModel, leffaInChannels } from '@leffa-webgpu/models';
import { leffaConfigFromExtra } from '@leffa-webgpu/pipelines';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainLeffa } from '../src/cli/train-leffa.js';
import { trainVae } from '../src/cli/train-vae.js';
import { smallLeffaRun } from './small-leffa-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'unet-channels-'));
const vae = join(tmp, 'vae');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await T.init();
  // A one-step VAE with 8 latent channels: the UNets built on it take their input widths from it.
  await trainVae({
    out: vae,
    steps: 1,
    batch: 1,
    height: 32,
    width: 24,
    lr: 1e-4,
    seed: 0,
    saveEvery: 1,
    latentChannels: 8,
  });
});

describe('train --unet-channels', () => {
  const args = { ...smallLeffaRun, steps: 1, pool: 1, saveEvery: 1 };

  it('builds both UNets at the given widths, and a later command rebuilds them from the checkpoint', async () => {
    const out = join(tmp, 'wide');
    await trainLeffa({ ...args, out, vae: join(vae, 'checkpoint'), unetChannels: [48, 64, 72] });
    const config = leffaConfigFromExtra(JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')).extra);
    expect(config.unet.blockOutChannels).toEqual([48, 64, 72]);
    expect(config.vae.latentChannels).toBe(8);
    // The tiny preset itself is untouched.
    expect(LEFFA_CONFIGS.tiny.unet.blockOutChannels).toEqual([32, 64, 64]);
    const model = new LeffaModel(config);
    await T.loadCheckpoint(join(out, 'checkpoint'), { model });
    const shapes = Object.fromEntries([...model.stateDict()].map(([k, v]) => [k, v.shape]));
    expect(shapes['unet.conv_in.weight']).toEqual([48, leffaInChannels(8), 3, 3]);
    expect(shapes['unet.conv_out.weight']).toEqual([8, 48, 3, 3]);
    expect(shapes['unet_encoder.conv_in.weight']).toEqual([48, 8, 3, 3]);
    expect(shapes['unet.down_blocks.2.resnets.0.conv2.weight']).toEqual([72, 72, 3, 3]);
  });

  it('refuses widths the norm groups cannot split, a wrong level count, and --init', async () => {
    const base = { ...args, out: join(tmp, 'bad'), vae: join(vae, 'checkpoint') };
    await expect(trainLeffa({ ...base, unetChannels: [60, 64, 64] })).rejects.toThrow(
      /--unet-channels needs 3 numbers \(one per UNet level\), each a multiple of the 8 norm groups; got 60,64,64/,
    );
    await expect(trainLeffa({ ...base, unetChannels: [64, 64] })).rejects.toThrow(/needs 3 numbers/);
    await expect(
      trainLeffa({ ...args, out: join(tmp, 'init'), init: 'shipped:leffa-tiny-tryon', unetChannels: [64, 64, 64] }),
    ).rejects.toThrow(/--unet-channels applies to training from scratch/);
  });
});
