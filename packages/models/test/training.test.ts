import * as T from '@leffa-webgpu/core';
import { AutoencoderKL, DDPMScheduler, TINY_UNET, TINY_VAE, UNet2DConditionModel } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

/** A smooth n x n test image: colour gradients and a disc. */
function testImage(n: number): T.Tensor {
  const data = new Float32Array(3 * n * n);
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const disc = (x - 0.62 * n) ** 2 + (y - 0.38 * n) ** 2 < 0.037 * n * n ? 0.8 : 0;
      data[y * n + x] = (x / n) * 1.6 - 0.8 + disc;
      data[n * n + y * n + x] = (y / n) * 1.6 - 0.8;
      data[2 * n * n + y * n + x] = disc - 0.4;
    }
  }
  return T.tensor(data, [1, 3, n, n]);
}

describe('model training', () => {
  it('a tiny VAE overfits one image (reconstruction loss falls 10x)', async () => {
    const vae = new AutoencoderKL(TINY_VAE);
    const opt = new T.AdamW(vae.parameters(), { lr: 3e-3, weightDecay: 0 });
    const x = testImage(64);
    const losses: number[] = [];
    for (let step = 0; step < 120; step++) {
      const l = T.tidy(() => {
        const loss = T.mseLoss(vae.decode(vae.encode(x).mode()), x);
        loss.backward();
        opt.step();
        opt.zeroGrad();
        return loss.detach();
      });
      if (step === 0 || step === 119) losses.push(await l.item());
      await T.throttle();
      l.dispose();
    }
    expect(losses[1]!).toBeLessThan(losses[0]! / 10);
  }, 300_000);

  it("a tiny UNet's diffusion loss falls on a toy set", async () => {
    const unet = new UNet2DConditionModel({ ...TINY_UNET, crossAttentionDim: 32, skipCrossAttention: true });
    const opt = new T.AdamW(unet.parameters(), { lr: 1e-3, weightDecay: 0 });
    const scheduler = new DDPMScheduler();
    const gen = new T.Generator(5);
    // Toy data: two fixed 4x8x8 latents.
    const x0 = T.tidy(() => T.mul(T.sin(T.mul(T.reshape(T.arange(512), [2, 4, 8, 8]), 0.37)), 0.8));
    let seed = 0;
    const window = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const early: number[] = [];
    const late: number[] = [];
    for (let step = 0; step < 40; step++) {
      const t = [(seed * 37) % 1000, (seed * 91 + 500) % 1000];
      seed++;
      const l = T.tidy(() => {
        const noise = T.randn([2, 4, 8, 8], { generator: gen });
        const pred = unet.forward(scheduler.addNoise(x0, noise, t), t).sample;
        const loss = T.mseLoss(pred, noise);
        loss.backward();
        opt.step();
        opt.zeroGrad();
        return loss.detach();
      });
      await T.throttle();
      if (step < 8) early.push(await l.item());
      if (step >= 32) late.push(await l.item());
      l.dispose();
    }
    expect(window(late)).toBeLessThan(window(early) * 0.8);
  });
});
