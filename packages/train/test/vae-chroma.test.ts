import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { AutoencoderKL, LEFFA_CONFIGS } from '@leffa-webgpu/models';
import { generateSample, imagesToNCHW } from '@leffa-webgpu/data';
import { beforeAll, describe, expect, it } from 'vitest';
import { VaeTrainer } from '../src/index.js';

beforeAll(async () => {
  await T.init();
});

/** L1 + MSE between the colour parts (RGB minus the pixel's grey level) of two NCHW RGB arrays, on the host. */
function chromaLoss(a: Float32Array, b: Float32Array, n: number, hw: number): number {
  let l1 = 0;
  let l2 = 0;
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < hw; p++) {
      const at = (c: number, x: Float32Array) => x[(i * 3 + c) * hw + p]!;
      const [ga, gb] = [(at(0, a) + at(1, a) + at(2, a)) / 3, (at(0, b) + at(1, b) + at(2, b)) / 3];
      for (let c = 0; c < 3; c++) {
        const d = at(c, a) - ga - (at(c, b) - gb);
        l1 += Math.abs(d);
        l2 += d * d;
      }
    }
  }
  return (l1 + l2) / (n * 3 * hw);
}

describe('VaeTrainer chromaWeight', () => {
  it('adds the weighted L1 + MSE of the colour parts of the reconstruction and the input', async () => {
    const [h, w] = [24, 16];
    const images = [0, 1].map((s) => generateSample({ seed: 40 + s, height: h, width: w }).garment);
    T.manualSeed(5);
    const vae = new AutoencoderKL(LEFFA_CONFIGS.tiny.vae);
    // The reconstruction the step will see: the same weights and the same posterior noise (a generator of the same seed).
    const expected = await T.noGrad(async () => {
      const x = T.tensor(imagesToNCHW(images, h, w), [2, 3, h, w]);
      const recon = vae.decode(vae.encode(x).sample(new T.Generator(9)));
      const [a, b] = await Promise.all([recon.data(), x.data()]);
      T.dispose([x, recon]);
      return chromaLoss(a as Float32Array, b as Float32Array, 2, h * w);
    });
    const trainer = new VaeTrainer({ config: LEFFA_CONFIGS.tiny.vae, seed: 9, chromaWeight: 2.5 }, vae);
    const losses = trainer.step(images, h, w);
    const [total, reconstruction, kl] = await Promise.all([
      losses.total.item(),
      losses.reconstruction.item(),
      losses.kl.item(),
    ]);
    T.dispose(losses);
    expect(expected).toBeGreaterThan(0.01);
    expect((total - reconstruction - 1e-4 * kl) / 2.5).toBeCloseTo(expected, 4);
    T.dispose(vae.parameters());
  });

  it('is recorded in the checkpoint so a resumed run keeps it', async () => {
    const trainer = new VaeTrainer({ config: LEFFA_CONFIGS.tiny.vae, chromaWeight: 3 });
    const dir = join(mkdtempSync(join(tmpdir(), 'vae-chroma-')), 'checkpoint');
    await trainer.save(dir);
    expect(((await T.openCheckpoint(dir)).extra as { chromaWeight: number }).chromaWeight).toBe(3);
    T.dispose(trainer.vae.parameters());
  });
});
