import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS, LeffaModel, referenceFromGenerative } from '@leffa-webgpu/models';
import { leffaConfigFromExtra } from '@leffa-webgpu/pipelines';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainLeffa } from '../src/cli/train-leffa.js';
import { smallLeffaRun } from './small-leffa-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'reference-from-generative-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await T.init();
});

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

/** Input channels first .. first + count - 1 of every filter of [cout, cin, 3, 3] weights, filter after filter. */
const channels = (w: Float32Array, cout: number, cin: number, first: number, count: number) =>
  Array.from({ length: cout }, (_, o) =>
    Array.from(w.slice((o * cin + first) * 9, (o * cin + first + count) * 9)),
  ).flat();

describe('referenceFromGenerative (the reference UNet starts as the generative one)', () => {
  it('the reference UNet then computes what the generative UNet does on the same latent, from copies', async () => {
    const model = new LeffaModel(LEFFA_CONFIGS.tiny);
    const latent = LEFFA_CONFIGS.tiny.vae.latentChannels;
    const own = model.stateDict();
    const dict = T.noGrad(() => referenceFromGenerative(own, latent));
    for (const key of ['unet_encoder.down_blocks.0.resnets.0.norm1.weight', 'unet_encoder.conv_out.weight']) {
      const twin = own.get(key.replace('unet_encoder.', 'unet.'))!;
      expect(Array.from(await dict.get(key)!.data())).toEqual(Array.from(await twin.data()));
      // Copies, not the same storage: training one UNet must not move the other.
      expect(dict.get(key)).not.toBe(twin);
    }
    const z = T.randn([1, latent, 8, 6], { generator: new T.Generator(2) });
    const run = (m: LeffaModel) => ({
      ref: T.noGrad(() => m.unet_encoder.forward(z, 7).sample),
      // The generative UNet's other inputs (mask, masked-image latent, DensePose) at zero add nothing.
      gen: T.noGrad(() => {
        const rest = T.zeros([1, m.unet.conv_in.weight.shape[1]! - latent, 8, 6]);
        return m.unet.forward(T.concat([z, rest], 1), 7).sample;
      }),
    });
    const before = run(model);
    expect(maxDiff(await before.ref.data(), await before.gen.data())).toBeGreaterThan(1e-3);
    model.loadStateDict(dict);
    for (const [key, t] of dict) if (own.get(key) !== t) t.dispose();
    const after = run(model);
    expect(maxDiff(await after.ref.data(), await after.gen.data())).toBeLessThan(1e-5);
    T.dispose([z, before.ref, before.gen, after.ref, after.gen]);
    model.dispose();
  });

  it("with reference coordinates, conv_in's latent filters are copied and the coordinate filters kept", async () => {
    const config = { ...LEFFA_CONFIGS.tiny, referenceCoordinates: true };
    const model = new LeffaModel(config);
    const latent = config.vae.latentChannels;
    const dict = T.noGrad(() => referenceFromGenerative(model.stateDict(), latent));
    const [cout, genIn] = model.unet.conv_in.weight.shape as [number, number];
    const gen = await model.unet.conv_in.weight.data();
    const before = await model.unet_encoder.conv_in.weight.data();
    const copied = await dict.get('unet_encoder.conv_in.weight')!.data();
    expect(channels(copied, cout, latent + 2, 0, latent)).toEqual(channels(gen, cout, genIn, 0, latent));
    expect(channels(copied, cout, latent + 2, latent, 2)).toEqual(channels(before, cout, latent + 2, latent, 2));
    // Every reference weight in the map is a new copy.
    for (const [key, t] of dict) if (key.startsWith('unet_encoder.')) t.dispose();
    model.dispose();
  });

  it('names what it needs', () => {
    expect(() => referenceFromGenerative(new Map(), 4)).toThrow(/no unet_encoder\.\* weights/);
    const model = new LeffaModel(LEFFA_CONFIGS.tiny);
    const dict = new Map([...model.stateDict()].filter(([k]) => k !== 'unet.conv_out.bias'));
    expect(() => referenceFromGenerative(dict, 4)).toThrow(/missing unet\.\* for unet_encoder\.conv_out\.bias/);
    model.dispose();
  });

  it('train --reference-from-generative: the run starts from the copy, and needs --init', async () => {
    const args = { ...smallLeffaRun, steps: 1, pool: 1, saveEvery: 1, lr: 1e-9 };
    await expect(
      trainLeffa({ ...args, out: join(tmp, 'none'), vae: 'vae', referenceFromGenerative: true }),
    ).rejects.toThrow(/--reference-from-generative copies a trained generative UNet; give --init/);
    const out = join(tmp, 'copy');
    await trainLeffa({ ...args, out, init: 'shipped:leffa-tiny-tryon', referenceFromGenerative: true });
    const extra = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')).extra;
    const model = new LeffaModel(leffaConfigFromExtra(extra));
    await T.loadCheckpoint(join(out, 'checkpoint'), { model });
    // One step at lr 1e-9 moves nothing visibly: the reference UNet is the generative one.
    const key = 'down_blocks.1.resnets.0.conv1.weight';
    const dict = model.stateDict();
    expect(maxDiff(await dict.get(`unet_encoder.${key}`)!.data(), await dict.get(`unet.${key}`)!.data())).toBeLessThan(
      1e-6,
    );
    model.dispose();
  });
});
