/**
 * float16 for the Leffa models. `npm run half -w benchmarks -- diff` compares each model's float16 output with
 * its float32 output on the same (seeded, random) weights and inputs: the tiny VAE and tiny Leffa pair, the
 * SD1.5 VAE on a 128x96 image, and the SD1.5-size generative UNet (every SD1.5 block shape) at a 16x12 latent.
 * `npm run half -w benchmarks -- memory [--height 1024 --width 768] [--vae-height H --vae-width W] [--only unets|vae]` builds SD1.5
 * Leffa (two UNets + VAE) in float16 with random weights and runs its stages one after the other: both UNets at
 * batch 2 (guidance) for one step, then the VAE (two encodes, one decode). Per stage it reports the time and the
 * device memory: the peak of the live tensors, and everything the buffer pool holds at the end (live + cached,
 * which only grows within a stage, so it is the stage's footprint); both include the weights.
 * `npm run half -w benchmarks -- phases [--height 1024 --width 768] [--execute]` measures the released pipeline's
 * low-memory schedule phase by phase: only the phase's part of SD1.5 Leffa (float16) is on the device, with
 * what leffaSample carries between phases (its inputs, the prepared latents, the reference features), and the
 * VAE tiled where the image does not fit the adapter. Without --execute the weights are never written and the
 * work is not waited for: the pool takes buffers when ops are recorded, so the memory figures are final once
 * the phase is recorded (a 1024x768 step takes over half an hour on lavapipe).
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
  vaeDeviceLimits,
  vaeFitsDevice,
  vaeTileSizeFor,
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

/** Takes device buffers for a module's weights without writing them (contents undefined). */
function allocate(m: T.Module): number {
  let bytes = 0;
  for (const p of m.parameters()) {
    void p.storage.entry;
    bytes += p.byteLength;
  }
  return bytes;
}

async function phases(): Promise<void> {
  const [H, W] = [arg('height', 1024), arg('width', 768)];
  const execute = process.argv.includes('--execute');
  const model = T.nn.withoutInit(() => new LeffaModel(LEFFA_CONFIGS.sd15)).half();
  const limits = vaeDeviceLimits();
  const tiled = !vaeFitsDevice(SD15_VAE, H, W, 2, limits);
  if (tiled) model.vae.enableTiling({ tileSampleSize: vaeTileSizeFor(SD15_VAE, 2, limits) });
  console.log(
    `SD1.5 Leffa float16 at ${H}x${W}, low-memory schedule; VAE ${tiled ? `in ${model.vae.tiling!.tileSampleSize}-pixel tiles` : 'untiled'}; ${execute ? 'executed' : 'recorded only'}`,
  );
  console.log(`  norms and biases of every part (allocated when built): ${MiB(T.memoryStats().liveBytes)}`);
  const gen = new T.Generator(0);
  // leffaSample's inputs (ReleasedLeffa's LeffaTransform tensors), on the device throughout.
  const inputs = T.tidy(() => ({
    image: T.clamp(T.randn([1, 3, H, W], { generator: gen }), -1, 1),
    reference: T.clamp(T.randn([1, 3, H, W], { generator: gen }), -1, 1),
    mask: T.cast(T.gt(T.rand([1, 1, H, W], { generator: gen }), 0.5), 'float32'),
    densepose: T.clamp(T.randn([1, 3, H, W], { generator: gen }), -1, 1),
  }));
  console.log(`  with the inputs: ${MiB(T.memoryStats().liveBytes)}`);
  const phase = async <R>(name: string, parts: T.Module[], run: () => R): Promise<R> => {
    // Executed, the previous phase's buffers go back to the driver, as the schedule does; recorded only, they
    // cannot (queued work may still use them) and stay cached, so only the live figures compare.
    if (execute) {
      await T.sync();
      device.pool.emptyCache();
    }
    const weights = parts.reduce((n, m) => n + allocate(m), 0);
    device.pool.resetPeak();
    const before = T.memoryStats().liveBytes;
    const t0 = performance.now();
    const out = T.noGrad(run);
    const stats = T.memoryStats();
    if (execute) await T.sync();
    console.log(
      `  ${name}: peak live ${MiB(stats.peakLiveBytes)} (part's weights ${MiB(weights)}, held before ${MiB(before)}), ` +
        `live + cached ${MiB(stats.liveBytes + stats.pooledBytes)}, ${seconds(t0)}`,
    );
    for (const m of parts) m.dispose();
    return out;
  };
  const prepared = await phase('encode (VAE encoder, both images)', [model.vae.encoder, model.vae.quant_conv], () =>
    T.tidy(() => {
      const masked = model.encodeImage(T.mul(inputs.image, T.lt(inputs.mask, 0.5)), { generator: gen });
      const ref = model.encodeImage(inputs.reference, { generator: gen });
      const size = masked.shape.slice(2) as [number, number];
      const twice = (t: T.Tensor) => T.concat([t, t], 0);
      return {
        masked: twice(masked),
        mask: twice(T.interpolate(inputs.mask, { size, mode: 'nearest' })),
        densepose: twice(T.interpolate(inputs.densepose, { size, mode: 'nearest' })),
        ref: T.concat([T.zerosLike(ref), ref], 0),
        latent: T.randn([...masked.shape], { generator: gen }),
      };
    }),
  );
  const features = await phase('reference (reference UNet, batch 2)', [model.unet_encoder], () =>
    T.tidy(() => model.referenceFeatures(prepared.ref, 500)),
  );
  const latent = await phase('denoise (generative UNet, batch 2, guidance)', [model.unet], () =>
    T.tidy(() => {
      const x = T.concat([prepared.latent, prepared.latent], 0);
      const pred = model.predictNoise(
        { noisyLatent: x, maskLatent: prepared.mask, maskedLatent: prepared.masked, densepose: prepared.densepose },
        500,
        features,
      ).sample;
      const [uncond, cond] = T.chunk(pred, 2, 0) as [T.Tensor, T.Tensor];
      return T.add(prepared.latent, T.mul(classifierFreeGuidance(uncond, cond, 2.5), 0.01));
    }),
  );
  // Held through the decode, as leffaSample holds the features of ref acceleration (the larger case).
  await phase('decode (VAE decoder)', [model.vae.decoder, model.vae.post_quant_conv], () =>
    T.tidy(() => T.clamp(model.decodeLatent(latent), -1, 1)),
  );
  T.dispose(features);
}

if (mode === 'diff') await diff();
else if (mode === 'phases') await phases();
else if (mode === 'memory') await memory();
else
  throw new Error(
    'usage: leffa-half.ts diff | memory [--height H --width W] [--vae-height H --vae-width W] [--only unets|vae] | phases [--height H --width W] [--execute]',
  );
process.exit(0);
