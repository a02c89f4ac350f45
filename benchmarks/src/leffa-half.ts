/**
 * float16 for the Leffa models. `npm run half -w benchmarks -- diff` compares each model's float16 output with
 * its float32 output on the same (seeded, random) weights and inputs: the tiny VAE and tiny Leffa pair, the
 * SD1.5 VAE on a 128x96 image, and the SD1.5-size generative UNet (every SD1.5 block shape) at a 16x12 latent.
 * `npm run half -w benchmarks -- memory [--height 1024 --width 768] [--vae-height H --vae-width W] [--only unets|vae]` builds SD1.5
 * Leffa (two UNets + VAE) in float16 with random weights and runs its stages one after the other: both UNets at
 * batch 2 (guidance) for one step, then the VAE (two encodes, one decode). Per stage it reports the time and the
 * device memory: the peak of the live tensors, and everything the buffer pool holds at the end (live + cached,
 * which only grows within a stage, so it is the stage's footprint); both include the weights.
 */
import * as T from '@leffa-webgpu/core';
import {
  AutoencoderKL,
  LEFFA_CONFIGS,
  LeffaModel,
  SD15_UNET,
  SD15_VAE,
  UNet2DConditionModel,
  classifierFreeGuidance,
} from '@leffa-webgpu/models';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
const mode = process.argv[2];
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const device = await T.init();
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const seconds = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;

/** max|h - f| / max|f| and mean|h - f| / mean|f|. */
async function difference(half: T.Tensor, full: T.Tensor): Promise<string> {
  const [h, f] = await Promise.all([half.data(), full.data()]);
  let maxDiff = 0;
  let maxRef = 0;
  let sumDiff = 0;
  let sumRef = 0;
  for (let i = 0; i < f.length; i++) {
    const d = Math.abs(h[i]! - f[i]!);
    if (!Number.isFinite(d)) return 'non-finite';
    maxDiff = Math.max(maxDiff, d);
    maxRef = Math.max(maxRef, Math.abs(f[i]!));
    sumDiff += d;
    sumRef += Math.abs(f[i]!);
  }
  return `max ${(maxDiff / maxRef).toExponential(1)}, mean ${(sumDiff / sumRef).toExponential(1)} (relative)`;
}

/** Runs `run` on the float32 module, converts it with half(), runs again and prints the difference. */
async function compare(name: string, module: T.Module, run: () => T.Tensor): Promise<void> {
  const full = T.noGrad(run);
  await full.data();
  module.half();
  const half = T.noGrad(run);
  if (half.dtype !== 'float16') throw new Error(`${name}: the half model's output is ${half.dtype}`);
  console.log(`${name}: ${await difference(half, full)}`);
  T.dispose([full, half]);
  module.dispose();
}

async function diff(): Promise<void> {
  const gen = new T.Generator(21);
  const image = (h: number, w: number) => T.clamp(T.randn([1, 3, h, w], { generator: gen }), -1, 1);
  {
    const vae = new AutoencoderKL(LEFFA_CONFIGS.tiny.vae);
    const x = image(64, 48);
    await compare('tiny VAE encode (posterior mean) + decode, 64x48', vae, () => vae.decode(vae.encode(x).mode()));
  }
  {
    const leffa = new LeffaModel(LEFFA_CONFIGS.tiny);
    const ref = T.randn([1, 4, 16, 12], { generator: gen });
    const inputs = {
      noisyLatent: T.randn([1, 4, 16, 12], { generator: gen }),
      maskLatent: T.gt(T.rand([1, 1, 16, 12], { generator: gen }), 0.5),
      maskedLatent: T.randn([1, 4, 16, 12], { generator: gen }),
      densepose: image(16, 12),
    };
    await compare(
      'tiny Leffa (reference UNet + generative UNet), 16x12 latent',
      leffa,
      () => leffa.predictNoise(inputs, 500, leffa.referenceFeatures(ref, 500)).sample,
    );
  }
  {
    const vae = new AutoencoderKL(SD15_VAE);
    const x = image(128, 96);
    await compare('SD1.5 VAE encode (posterior mean) + decode, 128x96', vae, () => vae.decode(vae.encode(x).mode()));
  }
  {
    const t0 = performance.now();
    const unet = new UNet2DConditionModel({ ...SD15_UNET, inChannels: 12 });
    const x = T.randn([1, 12, 16, 12], { generator: gen });
    await compare('SD1.5 generative UNet (12 channels), 16x12 latent', unet, () => unet.forward(x, 500).sample);
    console.log(`  (${seconds(t0)} with building the weights)`);
  }
}

/** Random weights straight into float16 parameters (never allocated in float32): ~N(0, 1/fan_in), norms near 1. */
function randomHalfWeights(model: T.Module, gen: T.Generator): void {
  for (const [name, p] of model.namedParameters()) {
    T.tidy(() => {
      const fanIn = p.shape.slice(1).reduce((a, b) => a * b, 1);
      const r = T.randn(p.shape, { generator: gen });
      const isNormScale = p.rank === 1 && /norm/.test(name) && name.endsWith('weight');
      const value = p.rank > 1 ? T.mul(r, 1 / Math.sqrt(fanIn)) : isNormScale ? T.add(T.mul(r, 0.1), 1) : T.mul(r, 0.1);
      p.assign(T.cast(value, 'float16'));
    });
  }
}

async function memory(): Promise<void> {
  const height = arg('height', 1024);
  const width = arg('width', 768);
  const vaeHeight = arg('vae-height', height);
  const vaeWidth = arg('vae-width', width);
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
  const gen = new T.Generator(0);
  let t0 = performance.now();
  const model = T.nn.withoutInit(() => new LeffaModel(LEFFA_CONFIGS.sd15)).half();
  randomHalfWeights(model, gen);
  await model.parameters().at(-1)!.data();
  const weights = device.memoryStats().liveBytes;
  console.log(
    `SD1.5 Leffa (vae + unet_encoder + unet): ${(model.numParameters() / 1e6).toFixed(0)}M float16 parameters, ${MiB(weights)} on the device, built in ${seconds(t0)}`,
  );
  // Each stage starts from the weights alone (cache emptied): the figures are the weights plus that stage.
  const stage = async (name: string, run: () => T.Tensor) => {
    device.pool.emptyCache();
    device.pool.resetPeak();
    t0 = performance.now();
    let out: T.Tensor;
    try {
      out = T.noGrad(run);
    } catch (e) {
      console.log(`${name}: ${(e as Error).message}`);
      return;
    }
    // Buffers are taken when ops are recorded, so the memory figures are final before the device finishes.
    const stats = device.memoryStats();
    console.log(
      `${name}: peak live ${MiB(stats.peakLiveBytes)}, live + cached ${MiB(stats.liveBytes + stats.pooledBytes)} (recorded in ${seconds(t0)})`,
    );
    const data = await out.data();
    console.log(`  finished in ${seconds(t0)}; output ${data.every(Number.isFinite) ? 'finite' : 'NOT finite'}`);
    out.dispose();
  };
  const [h, w] = [height / 8, width / 8];
  const latent = (c: number) => T.randn([2, c, h, w], { generator: gen });
  if (only !== 'vae')
    await stage(
      `UNets at ${height}x${width} (reference UNet + generative UNet, batch 2 for guidance, one step)`,
      () => {
        const features = model.referenceFeatures(latent(4), 500);
        const pred = model.predictNoise(
          { noisyLatent: latent(4), maskLatent: latent(1), maskedLatent: latent(4), densepose: latent(3) },
          500,
          features,
        ).sample;
        const [uncond, cond] = T.chunk(pred, 2, 0) as [T.Tensor, T.Tensor];
        return classifierFreeGuidance(uncond, cond, 2.5);
      },
    );
  const image = () => T.clamp(T.randn([1, 3, vaeHeight, vaeWidth], { generator: gen }), -1, 1);
  if (only !== 'unets')
    await stage(`VAE at ${vaeHeight}x${vaeWidth} (encode x2, decode)`, () => {
      const a = model.encodeImage(image(), { generator: gen });
      const b = model.encodeImage(image(), { generator: gen });
      return model.decodeLatent(T.add(a, b));
    });
}

if (mode === 'diff') await diff();
else if (mode === 'memory') await memory();
else
  throw new Error(
    'usage: leffa-half.ts diff | memory [--height H --width W] [--vae-height H --vae-width W] [--only unets|vae]',
  );
process.exit(0);
