/**
 * A dry run (T.dryRun) of the released pipeline accounts exactly the device memory of the real run: the same
 * peak of live buffers and of everything the pool holds, at two model sizes, with and without lowMemory.
 */
import * as T from '@leffa-webgpu/core';
import { type ReleasedLeffaPrepared, loadReleasedLeffa } from '@leffa-webgpu/pipelines';
import { beforeAll, describe, expect, it } from 'vitest';
import { RELEASED_FOLDER, SMALL_RELEASED } from '../../../test/helpers/released-leffa.js';

beforeAll(async () => {
  await T.init();
});

/**
 * A prepared example (LeffaTransform's arrays) made here rather than by `prepare`: the preprocessing models leave
 * tensors to the garbage collector, whose frees at random times would move the pool's figures between runs.
 */
function prepared(height: number, width: number): ReleasedLeffaPrepared {
  const plane = height * width;
  const wave = (seed: number) =>
    Float32Array.from({ length: 3 * plane }, (_, i) => Math.sin(i / 7 + seed) * Math.cos(i / width / 5 - seed));
  const mask = Float32Array.from({ length: plane }, (_, i) => ((i % width) / width > 0.3 && i / plane < 0.7 ? 1 : 0));
  return { inputs: { height, width, src: wave(1), ref: wave(2), mask, densepose: wave(3) } } as ReleasedLeffaPrepared;
}

describe('dry run of the released pipeline (the random-weight released folder)', () => {
  // The second size with the VAE in tiles, as the released size runs on adapters it does not fit in one piece.
  for (const [size, vaeTiling] of [
    [[64, 48], false],
    [[96, 80], { tileSampleSize: 32 }],
  ] as const) {
    it(`${size.join('x')}${vaeTiling ? ', VAE tiled' : ''}: the same device memory figures as the real run, with and without lowMemory`, async () => {
      const leffa = await loadReleasedLeffa(RELEASED_FOLDER, { ...SMALL_RELEASED, size: [...size], model: 'viton_hd' });
      const p = prepared(size[0], size[1]);
      const device = T.activeDevice();
      // Normal first: a dry low-memory run leaves the decoder it uploaded without device memory.
      for (const lowMemory of [false, true]) {
        const measure = async (dry: boolean) => {
          await T.sync();
          device.pool.resetPeak();
          const before = T.memoryStats();
          const submits = device.counters.submits;
          const run = () => leffa.generate(p, { steps: 2, seed: 3, lowMemory, vaeTiling });
          const image = dry ? await T.dryRun(run) : await run();
          const after = T.memoryStats();
          return {
            image,
            before,
            submits: device.counters.submits - submits,
            peakLive: after.peakLiveBytes,
            peakHeld: after.peakHeldBytes,
            live: after.liveBytes,
          };
        };
        // The first run loads or moves the parts; the second and the dry run start from the same placement.
        await measure(false);
        const real = await measure(false);
        const dry = await measure(true);
        expect(dry.before).toEqual(real.before);
        expect(real.peakLive).toBeGreaterThan(real.before.liveBytes);
        expect(dry.peakLive).toBe(real.peakLive);
        expect(dry.peakHeld).toBe(real.peakHeld);
        expect(dry.live).toBe(real.live);
        // The dry run executes nothing (no submit): its image is the zero latent's grey.
        expect(dry.submits).toBe(0);
        expect(real.submits).toBeGreaterThan(0);
        expect(dry.image.data.every((v) => v === 128)).toBe(true);
        expect(real.image.data.some((v) => v !== 128)).toBe(true);
      }
      await leffa.dispose();
    });
  }
});
