import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import {
  LEFFA_CONFIGS,
  LeffaModel,
  coordinateChannels,
  leffaInChannels,
  withReferenceCoordinates,
} from '@leffa-webgpu/models';
import { leffaConfigFromExtra } from '@leffa-webgpu/pipelines';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainLeffa } from '../src/cli/train-leffa.js';
import { smallLeffaRun } from './small-leffa-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'reference-coordinates-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await T.init();
});

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('reference coordinates (CoordConv input of the reference UNet)', () => {
  it('coordinateChannels holds x then y, from -1 to 1, repeated over the batch', async () => {
    const c = coordinateChannels(2, 3, 5);
    expect(c.shape).toEqual([2, 2, 3, 5]);
    const v = await c.data();
    c.dispose();
    // x runs along each row, y down the columns.
    expect(Array.from(v.slice(0, 5))).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect([v[15], v[20], v[25]]).toEqual([-1, 0, 1]);
    expect(Array.from(v.slice(30, 60))).toEqual(Array.from(v.slice(0, 30)));
    const one = coordinateChannels(1, 1, 1);
    expect(Array.from(await one.data())).toEqual([0, 0]);
    one.dispose();
  });

  it('a model given zero coordinate weights computes what the model without them did; nonzero weights change it', async () => {
    const plain = new LeffaModel(LEFFA_CONFIGS.tiny);
    const coords = new LeffaModel({ ...LEFFA_CONFIGS.tiny, referenceCoordinates: true });
    const latent = LEFFA_CONFIGS.tiny.vae.latentChannels;
    expect(coords.unet_encoder.conv_in.weight.shape).toEqual([32, latent + 2, 3, 3]);
    // The generative UNet is the released layout either way.
    expect(coords.unet.conv_in.weight.shape).toEqual([32, leffaInChannels(latent), 3, 3]);
    const dict = T.noGrad(() => withReferenceCoordinates(plain.stateDict()));
    coords.loadStateDict(dict);
    const padded = await coords.unet_encoder.conv_in.weight.data();
    const original = await plain.unet_encoder.conv_in.weight.data();
    // [32, latent + 2, 3, 3]: the first latent channels of each filter are the old ones, the last two zero.
    for (let o = 0; o < 32; o++) {
      const row = padded.slice(o * (latent + 2) * 9, (o + 1) * (latent + 2) * 9);
      expect(Array.from(row.slice(0, latent * 9))).toEqual(
        Array.from(original.slice(o * latent * 9, (o + 1) * latent * 9)),
      );
      expect(Array.from(row.slice(latent * 9)).every((x) => x === 0)).toBe(true);
    }
    const ref = T.randn([2, latent, 8, 6], { generator: new T.Generator(3) });
    const features = async (m: LeffaModel) =>
      Promise.all(T.noGrad(() => m.referenceFeatures(ref, [10, 500])).map((f) => f.data()));
    const before = await features(plain);
    const after = await features(coords);
    expect(after.length).toBe(before.length);
    before.forEach((f, i) => expect(maxDiff(f, after[i]!)).toBeLessThan(1e-5));

    const w = coords.unet_encoder.conv_in.weight;
    const bumped = T.add(w, 0.05);
    w.assign(bumped);
    bumped.dispose();
    const moved = await features(coords);
    expect(Math.max(...before.map((f, i) => maxDiff(f, moved[i]!)))).toBeGreaterThan(1e-3);
    ref.dispose();
    plain.dispose();
    coords.dispose();
  });

  it('withReferenceCoordinates names the weight it needs', () => {
    expect(() => withReferenceCoordinates(new Map())).toThrow(/no 4-d unet_encoder\.conv_in\.weight/);
  });

  it('train --reference-coordinates from a checkpoint without them: recorded, widened, and rebuilt by later commands', async () => {
    const args = { ...smallLeffaRun, steps: 1, pool: 1, saveEvery: 1 };
    const start = join(tmp, 'plain');
    await trainLeffa({ ...args, out: start, init: 'shipped:leffa-tiny-tryon' });
    const out = join(tmp, 'coords');
    await trainLeffa({ ...args, out, init: join(start, 'checkpoint'), referenceCoordinates: true });
    const extra = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')).extra;
    const config = leffaConfigFromExtra(extra);
    expect(config.referenceCoordinates).toBe(true);
    const model = new LeffaModel(config);
    await T.loadCheckpoint(join(out, 'checkpoint'), { model });
    const latent = config.vae.latentChannels;
    expect(model.unet_encoder.conv_in.weight.shape[1]).toBe(latent + 2);
    // One step of AdamW moved the new weights off zero: they are trained, not frozen.
    const w = await model.unet_encoder.conv_in.weight.data();
    const perFilter = (latent + 2) * 9;
    const coordinateWeights = Array.from(w).filter((_, i) => i % perFilter >= latent * 9);
    expect(coordinateWeights.some((x) => x !== 0)).toBe(true);
    model.dispose();
    // Continuing from it keeps them (no second widening).
    const again = join(tmp, 'again');
    await trainLeffa({ ...args, out: again, init: join(out, 'checkpoint'), referenceCoordinates: true });
    expect(
      leffaConfigFromExtra(JSON.parse(readFileSync(join(again, 'checkpoint', 'state.json'), 'utf8')).extra),
    ).toMatchObject({ referenceCoordinates: true });
  });
});
