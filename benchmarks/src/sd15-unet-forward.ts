/**
 * One forward pass of the Stable Diffusion 1.5-size UNet (860M parameters, random weights) at a 64x48
 * latent (a 512x384 image) with 77 text tokens of cross-attention context: the time on this adapter,
 * split into a first (cold: pipeline compilation) and a second (warm) pass, and the peak GPU memory.
 * `npm run sd15 -w benchmarks [-- --in-channels 12]` (12 is Leffa's generative UNet).
 */
import * as T from '@leffa-webgpu/core';
import { SD15_UNET, UNet2DConditionModel } from '@leffa-webgpu/models';

const inChannels = Number(process.argv[process.argv.indexOf('--in-channels') + 1] ?? 4) || 4;
process.env.XDG_RUNTIME_DIR ??= '/tmp';
const device = await T.init();
console.log(`adapter: ${device.report.description || device.report.device}`);
const gen = new T.Generator(0);
let t0 = performance.now();
const unet = new UNet2DConditionModel({ ...SD15_UNET, inChannels });
await unet.parameters().at(-1)!.data(); // waits for the initialisation
const params = unet.parameters().reduce((n, p) => n + p.size, 0);
console.log(
  `SD1.5 UNet: ${(params / 1e6).toFixed(0)}M parameters, in_channels ${inChannels}, built in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);
const sample = T.randn([1, inChannels, 64, 48], { generator: gen });
const context = T.randn([1, 77, SD15_UNET.crossAttentionDim], { generator: gen });
for (const pass of ['cold', 'warm']) {
  device.pool.resetPeak();
  t0 = performance.now();
  const out = T.noGrad(() => unet.forward(sample, 500, { encoderHiddenStates: context }).sample);
  const data = await out.data();
  const ms = performance.now() - t0;
  if (!data.every(Number.isFinite)) throw new Error('sd15: the UNet output has non-finite values');
  console.log(
    `forward 1x${inChannels}x64x48 (${pass}): ${(ms / 1000).toFixed(2)} s, peak GPU memory ${(device.memoryStats().peakLiveBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  out.dispose();
}
process.exit(0);
