/**
 * The low-memory schedule (leffaOffloadSchedule, ReleasedLeffa's lowMemory) gives the normal schedule's result
 * bit for bit, with only the current phase's part on the device, from loading on; the VAE tiling run option.
 */
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS, type LeffaPhase, LeffaModel, leffaSample } from '@leffa-webgpu/models';
import {
  type RgbImage,
  leffaLowMemoryPlacement,
  leffaOffloadSchedule,
  loadLeffaWeights,
  loadReleasedLeffa,
} from '@leffa-webgpu/pipelines';
import { beforeAll, describe, expect, it } from 'vitest';
import { RELEASED_FOLDER, SMALL_RELEASED, releasedLeffaConfig } from '../../../test/helpers/released-leffa.js';

beforeAll(async () => {
  await T.init();
});

/** A smooth test photo. */
function photo(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++)
    for (let c = 0; c < 3; c++)
      data[3 * i + c] = 128 + Math.round(90 * Math.sin((i % width) / 5 + c + seed) * Math.cos(i / width / 7 - seed));
  return { width, height, data };
}

describe('leffaOffloadSchedule', () => {
  for (const refAcceleration of [false, true]) {
    it(`same latents bit for bit, one part on the device per phase (refAcceleration ${refAcceleration})`, async () => {
      const model = new LeffaModel(LEFFA_CONFIGS.tiny);
      const gen = new T.Generator(11);
      const inputs = T.tidy(() => ({
        image: T.clamp(T.randn([1, 3, 32, 24], { generator: gen }), -1, 1),
        reference: T.clamp(T.randn([1, 3, 32, 24], { generator: gen }), -1, 1),
        mask: T.gt(T.rand([1, 1, 32, 24], { generator: gen }), 0.5),
        densepose: T.clamp(T.randn([1, 3, 32, 24], { generator: gen }), -1, 1),
      }));
      const run = (beforePhase?: (p: LeffaPhase) => Promise<void>) =>
        leffaSample(model, inputs, {
          steps: 3,
          refAcceleration,
          generator: new T.Generator(3),
          ...(beforePhase ? { beforePhase } : {}),
        });
      const plain = await (await run()).data();
      const schedule = leffaOffloadSchedule(model);
      const parts = {
        encoder: model.vae.encoder,
        reference: model.unet_encoder,
        generative: model.unet,
        decoder: model.vae.decoder,
      };
      const seen: string[] = [];
      const scheduled = await run(async (phase) => {
        await schedule.beforePhase(phase);
        const on = Object.entries(parts)
          .filter(([, m]) => !T.nn.isOffloaded(m))
          .map(([k]) => k);
        seen.push(`${phase}:${on.join(',')}`);
      });
      expect(await scheduled.data()).toEqual(plain);
      const perStep = refAcceleration ? ['denoise:generative'] : ['reference:reference', 'denoise:generative'];
      expect(seen).toEqual([
        'encode:encoder',
        ...(refAcceleration ? ['reference:reference'] : []),
        ...perStep,
        ...perStep,
        ...perStep,
        'decode:decoder',
      ]);
      schedule.restore();
      expect(Object.values(parts).some((m) => T.nn.isOffloaded(m))).toBe(false);
      // Whole again: a normal run still gives the same result.
      expect(await (await run()).data()).toEqual(plain);
      model.dispose();
    });
  }
});

describe('ReleasedLeffa run options (the random-weight released folder)', () => {
  it('lowMemory: the same image bit for bit, less on the device while sampling', async () => {
    const leffa = await loadReleasedLeffa(RELEASED_FOLDER, { ...SMALL_RELEASED, model: 'viton_hd' });
    const p = await leffa.prepare(photo(53, 77, 1), photo(40, 60, 2));
    for (const refAcceleration of [false, true]) {
      const live = { normal: 0, low: 0 };
      const sample = (lowMemory: boolean) =>
        leffa.generate(p, {
          steps: 2,
          seed: 3,
          refAcceleration,
          lowMemory,
          onStep: () => {
            live[lowMemory ? 'low' : 'normal'] = T.memoryStats().liveBytes;
          },
        });
      const normal = await sample(false);
      const low = await sample(true);
      expect(low).toEqual(normal);
      // After a step only the generative UNet of the three Leffa parts (and no preprocessing model) is held.
      expect(live.low).toBeLessThan(live.normal);
    }
    await leffa.dispose();
  });

  it('vaeTiling: tiles on request (a different image), none by default where the image fits', async () => {
    const leffa = await loadReleasedLeffa(RELEASED_FOLDER, { ...SMALL_RELEASED, model: 'viton_hd' });
    const p = await leffa.prepare(photo(53, 77, 1), photo(40, 60, 2));
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const base = { steps: 1, seed: 5, log };
    const auto = await leffa.generate(p, base);
    expect(lines).toEqual([]);
    expect(await leffa.generate(p, { ...base, vaeTiling: false })).toEqual(auto);
    const tiled = await leffa.generate(p, { ...base, vaeTiling: { tileSampleSize: 32 } });
    expect(tiled.data).not.toEqual(auto.data);
    // The setting is per run: the next default run is untiled again.
    expect(await leffa.generate(p, base)).toEqual(auto);
    await leffa.dispose();
  });
});

describe('loading for the low-memory schedule (the random-weight released folder)', () => {
  const config = releasedLeffaConfig('sd15');

  for (const dtype of ['float32', 'float16'] as const) {
    it(`${dtype}: the device peak while loading is the first phase's part, not the whole model`, async (ctx) => {
      if (dtype === 'float16' && !T.activeDevice().hasF16) ctx.skip();
      const device = T.activeDevice();
      // What building the model allocates before anything is placed: the norms' ones and zeros of every part.
      const built = (() => {
        const live = T.memoryStats().liveBytes;
        const m = T.nn.withoutInit(() => new LeffaModel(config));
        const bytes = T.memoryStats().liveBytes - live;
        m.dispose();
        return bytes;
      })();
      const load = async (lowMemory: boolean) => {
        await T.sync();
        device.pool.resetPeak();
        const live = T.memoryStats().liveBytes;
        const model = await loadLeffaWeights(join(RELEASED_FOLDER, 'virtual_tryon.pth'), {
          config,
          dtype,
          ...(lowMemory ? { beforeLoad: leffaLowMemoryPlacement } : {}),
        });
        return { model, peak: T.memoryStats().peakLiveBytes - live };
      };
      const normal = await load(false);
      const low = await load(true);
      const { vae, unet_encoder, unet } = low.model;
      const all = T.nn.deviceBytes([normal.model]);
      const first = T.nn.deviceBytes([vae.encoder, vae.quant_conv]);
      // Loaded: the VAE encoder's weights on the device, the other parts in host memory.
      const encoder = [...vae.encoder.parameters(), ...vae.quant_conv.parameters()];
      expect(encoder.every((t) => t.storage.allocated)).toBe(true);
      expect([unet_encoder, unet, vae.decoder, vae.post_quant_conv].every((m) => T.nn.isOffloaded(m))).toBe(true);
      // The peak: the encoder's weights, plus at most what building allocated before the parts left the device
      // (upper bounds only: the pool's live figure also drops when collected garbage from before frees).
      expect(low.peak).toBeLessThanOrEqual(first + built);
      expect(low.peak).toBeLessThan(all);
      // The normal load puts the whole model on the device, more than that bound. (Not its measured peak: garbage
      // from earlier tests collected during a load this small can hide the rise in the live figure.)
      expect(all).toBeGreaterThan(first + built);
      // Reloaded, the weights are the normal load's, bit for bit.
      T.nn.reloadFromHost(low.model);
      const bits = async (m: T.Module) =>
        Promise.all(m.parameters().map((p) => (p.dtype === 'float16' ? p.halfBits() : p.data())));
      expect(await bits(low.model)).toEqual(await bits(normal.model));
      normal.model.dispose();
      low.model.dispose();
    });
  }

  it('lowMemory on a pipeline that has not loaded Leffa yet: the normal images, byte for byte', async () => {
    const normal = await loadReleasedLeffa(RELEASED_FOLDER, { ...SMALL_RELEASED, model: 'viton_hd' });
    const p = await normal.prepare(photo(53, 77, 1), photo(40, 60, 2));
    const runs = [
      { steps: 2, seed: 3 },
      { steps: 2, seed: 4, refAcceleration: true },
    ];
    const want = [];
    for (const run of runs) want.push(await normal.generate(p, run));
    await normal.dispose();
    const low = await loadReleasedLeffa(RELEASED_FOLDER, { ...SMALL_RELEASED, model: 'viton_hd' });
    for (const [i, run] of runs.entries()) expect(await low.generate(p, { ...run, lowMemory: true })).toEqual(want[i]);
    // Parts stay in host memory after a low-memory run; a normal run brings the whole model back.
    const images = await low.generate(p, runs[0]!);
    expect(images).toEqual(want[0]);
    await low.dispose();
  });
});
