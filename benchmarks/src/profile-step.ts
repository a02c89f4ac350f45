/**
 * Per-kernel GPU time of one whole training step (or forward pass):
 * `npm run bench -w benchmarks -- --profile-step vae|unet|sd15|sd15-attn|leffa|conv [--steps n] [--conv direct|winograd|winograd4|sliding] [--out file]`
 * (--conv forces the convolution algorithm where it applies, to compare with the automatic choice).
 *
 * - vae:  one step of the tiny VAE trainer (packages/train VaeTrainer, TINY_VAE, batch 8 of 64x48 crops):
 *         encode, posterior sample, decode, L1 + MSE + KL, backward, gradient clipping, AdamW.
 * - unet: one step of the tiny UNet (TINY_UNET without cross-attention, batch 4, 16x12 latent: the
 *         benchmark case `train step tiny UNet`): forward, epsilon MSE, backward, AdamW.
 * - sd15: one SD1.5-size UNet forward (random weights) at a 16x12 latent with 77 tokens of context (slow:
 *         building the 860M parameters alone takes a while).
 * - sd15-attn: forward + backward of one SD1.5 first-level Transformer2DModel (320 channels, 8 heads, Leffa's
 *         pass-through cross-attention) at a 64x48 latent (the benchmark case of that name).
 * - conv: forward + backward (input and weight gradients) of one SD-size 3x3 convolution, 1x320x32x24 -> 320 with
 *         bias (the benchmark case `conv2d 1x320x32x24->320 fwd+bwd`).
 * - leffa: one LeffaTrainer step as the try-on campaign runs it (random weights): both UNets at width 64 on every
 *         level, the 4x-downsampling VAE with 8 latent channels (stages 16, 32, 32), batch 4 of synthetic 128x96
 *         people (a 32x24 latent), Leffa loss and flow supervision on: encode, both UNets, losses, backward,
 *         clipping, AdamW, EMA.
 *
 * The step runs once unprofiled (pipeline compilation, buffer pool warm-up), then `--steps` times (default 1)
 * under `Device.profile`, which gives every dispatch its own timestamped compute pass. The report lists GPU
 * time per kernel key (summed over the profiled steps, divided by their number), its share of the profiled
 * GPU total and the dispatch count, sorted, plus the same per kernel family (conv products, matmul, norm...).
 * Absolute times are indicative (one pass per dispatch adds a little overhead per dispatch); shares are
 * what to read. The JSON goes to results/profile-<target>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { syntheticExample, toBatch } from '@leffa-webgpu/data';
import {
  LEFFA_CONFIGS,
  SD15_UNET,
  TINY_UNET,
  TINY_VAE,
  Transformer2DModel,
  UNet2DConditionModel,
} from '@leffa-webgpu/models';
import { LeffaTrainer, VaeTrainer } from '@leffa-webgpu/train';
import { hostCpu } from './host.js';

export const PROFILE_TARGETS = ['vae', 'unet', 'sd15', 'sd15-attn', 'leffa', 'conv'] as const;
export type ProfileTarget = (typeof PROFILE_TARGETS)[number];

interface Workload {
  description: string;
  /** Records one step; the returned tensor (e.g. the loss) is read back to end it. */
  step: () => T.Tensor;
  dispose: () => void;
}

function seededBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

function vaeWorkload(): Workload {
  const [batch, height, width] = [8, 64, 48];
  const trainer = new VaeTrainer({ config: TINY_VAE, seed: 0 });
  const images = Array.from({ length: batch }, (_, i) => seededBytes(height * width * 3, 100 + i));
  return {
    description: `tiny VAE training step (VaeTrainer, TINY_VAE), batch ${batch}, ${height}x${width} (HxW) crops`,
    step: () => trainer.step(images, height, width).total,
    dispose: () => {
      trainer.optimizer.dispose();
      T.dispose(trainer.vae.parameters());
    },
  };
}

function unetWorkload(): Workload {
  const batch = 4;
  const gen = new T.Generator(1);
  const x = T.randn([batch, 4, 16, 12], { generator: gen });
  const noise = T.randn([batch, 4, 16, 12], { generator: gen });
  const unet = new UNet2DConditionModel({ ...TINY_UNET, skipCrossAttention: true });
  const optimizer = new T.AdamW(unet.parameters(), { lr: 1e-4, weightDecay: 0 });
  const timesteps = Array.from({ length: batch }, (_, i) => 100 + 250 * i);
  return {
    description: `tiny UNet training step (TINY_UNET, no cross-attention), batch ${batch}, 16x12 latent`,
    step: () =>
      T.tidy(() => {
        const loss = T.mseLoss(unet.forward(x, timesteps).sample, noise);
        loss.backward();
        optimizer.step();
        optimizer.zeroGrad();
        return loss.detach();
      }),
    dispose: () => {
      optimizer.dispose();
      T.dispose([x, noise, ...unet.parameters()]);
    },
  };
}

function leffaWorkload(): Workload {
  const tiny = LEFFA_CONFIGS.tiny;
  const config = {
    vae: { ...tiny.vae, blockOutChannels: [16, 32, 32], latentChannels: 8 },
    unet: { ...tiny.unet, blockOutChannels: [64, 64, 64] },
  };
  const trainer = new LeffaTrainer({ config, lr: 5e-4, leffa: { mode: 'on', weight: 1 }, flowSupervision: 1 });
  const batch = toBatch(
    Array.from({ length: 4 }, (_, i) => syntheticExample('tryon', 100 + i, 128, 96)),
    { flow: true },
  );
  return {
    description:
      'Leffa try-on training step (UNets 64,64,64; VAE 16,32,32 with 8 latent channels), batch 4, 128x96 (32x24 latent)',
    step: () => trainer.step(batch).total,
    dispose: () => {
      trainer.optimizer.dispose();
      trainer.ema.dispose();
      T.dispose([...trainer.model.unet.parameters(), ...trainer.model.unet_encoder.parameters()]);
      T.dispose(trainer.model.vae.parameters());
      const { source, reference, densepose, mask, lossMask, flow } = batch;
      T.dispose([source, reference, densepose, mask, lossMask, flow!.grid, flow!.valid]);
    },
  };
}

function sd15Workload(): Workload {
  const gen = new T.Generator(0);
  const unet = new UNet2DConditionModel(SD15_UNET);
  const sample = T.randn([1, 4, 16, 12], { generator: gen });
  const context = T.randn([1, 77, SD15_UNET.crossAttentionDim], { generator: gen });
  return {
    description: 'SD1.5 UNet forward (random weights), batch 1, 16x12 latent, 77 context tokens',
    step: () => T.noGrad(() => unet.forward(sample, 500, { encoderHiddenStates: context }).sample),
    dispose: () => T.dispose([sample, context, ...unet.parameters()]),
  };
}

function sd15AttentionWorkload(): Workload {
  const gen = new T.Generator(0);
  const channels = SD15_UNET.blockOutChannels[0]!;
  const heads = SD15_UNET.attentionHeads as number;
  const block = new Transformer2DModel(channels, {
    heads,
    dimHead: channels / heads,
    crossAttentionDim: SD15_UNET.crossAttentionDim,
    skipCrossAttention: true,
    layers: 1,
    groups: SD15_UNET.normNumGroups,
  });
  return forwardBackward(
    block,
    [1, channels, 64, 48],
    gen,
    `SD1.5 Transformer2DModel (${channels} channels, ${heads} heads) forward + backward, 64x48 latent`,
  );
}

/** A module's forward and backward (input and parameter gradients) on a fixed random input and output gradient. */
function forwardBackward(
  module: T.Module & { forward(x: T.Tensor): T.Tensor },
  shape: number[],
  gen: T.Generator,
  description: string,
): Workload {
  const x = T.randn(shape, { generator: gen });
  const g = T.randn(shape, { generator: gen });
  return {
    description,
    step: () =>
      T.tidy(() => {
        const xx = x.detach();
        xx.requiresGrad = true;
        module.forward(xx).backward(g);
        const out = T.sum(xx.grad!);
        module.zeroGrad();
        return out;
      }),
    dispose: () => {
      module.dispose();
      T.dispose([x, g]);
    },
  };
}

function convWorkload(): Workload {
  return forwardBackward(
    new T.nn.Conv2d(320, 320, 3, { padding: 1 }),
    [1, 320, 32, 24],
    new T.Generator(0),
    '3x3 convolution 1x320x32x24 -> 320 with bias, forward + backward (input, weight and bias gradients)',
  );
}

/** A readable name for a kernel key: conv keys carry their whole spec as JSON. */
export function kernelLabel(key: string): string {
  if (key.startsWith('conv:{')) {
    const s = JSON.parse(key.slice(5)) as Record<string, unknown>;
    const stride = s.strideH === 1 && s.strideW === 1 ? '' : ` s${s.strideH}x${s.strideW}`;
    const dil = s.dilationH === 1 && s.dilationW === 1 ? '' : ` d${s.dilationH}x${s.dilationW}`;
    return `conv.${s.product} ${s.kh}x${s.kw}${stride} p${s.padH}x${s.padW}${dil} ${s.variant}${s.bias ? ' +bias' : ''}`;
  }
  return key.length > 64 ? `${key.slice(0, 61)}...` : key;
}

/** The family a kernel belongs to: conv products and winograd stages by name, others by the key's first field. */
export function kernelFamily(key: string): string {
  if (key.startsWith('conv:{')) return `conv.${(JSON.parse(key.slice(5)) as { product: string }).product}`;
  const head = key.split(':')[0]!;
  return head === 'winograd' ? `winograd.${key.split(':')[1]}` : head;
}

interface Row {
  name: string;
  ms: number;
  count: number;
  share: number;
}

function rows(entries: Iterable<[string, { ms: number; count: number }]>, steps: number, total: number): Row[] {
  return [...entries]
    .map(([name, t]) => ({ name, ms: t.ms / steps, count: t.count / steps, share: t.ms / steps / total }))
    .sort((a, b) => b.ms - a.ms);
}

function table(title: string, list: Row[], limit: number): string {
  const shown = list.slice(0, limit);
  const width = Math.max(title.length, ...shown.map((r) => r.name.length));
  const lines = [
    `${title.padEnd(width)}  ${'ms'.padStart(9)}  ${'share'.padStart(6)}  ${'cum'.padStart(6)}  dispatches`,
  ];
  let cum = 0;
  for (const r of shown) {
    cum += r.share;
    lines.push(
      `${r.name.padEnd(width)}  ${r.ms.toFixed(2).padStart(9)}  ${(100 * r.share).toFixed(1).padStart(5)}%  ${(100 * cum).toFixed(1).padStart(5)}%  ${r.count}`,
    );
  }
  if (list.length > limit) lines.push(`... ${list.length - limit} more (${(100 * (1 - cum)).toFixed(1)}% of the time)`);
  return lines.join('\n');
}

export async function profileStep(
  target: ProfileTarget,
  args: { steps: number; out?: string; conv?: T.ConvAlgorithm },
): Promise<number> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const device = await T.init();
  if (args.conv) {
    T.setConvAlgorithm(args.conv);
    console.log(`convolution algorithm forced to ${args.conv} where it applies`);
  }
  console.log(
    `adapter: ${device.report.description || device.report.device} on ${hostCpu().cpu}; conv/matmul kernel: ${T.matmulVariantFor(device)}`,
  );
  const workloads: Record<ProfileTarget, () => Workload> = {
    vae: vaeWorkload,
    unet: unetWorkload,
    sd15: sd15Workload,
    'sd15-attn': sd15AttentionWorkload,
    leffa: leffaWorkload,
    conv: convWorkload,
  };
  const workload = workloads[target]();
  console.log(`profiling: ${workload.description}`);
  try {
    // Warm-up: compiles every pipeline and fills the buffer pool, so the profiled steps time kernels only.
    let t0 = performance.now();
    const first = workload.step();
    const firstValue = await first.data();
    first.dispose();
    console.log(`warm-up step: ${(performance.now() - t0).toFixed(0)} ms wall`);
    t0 = performance.now();
    const plain = workload.step();
    await plain.data();
    plain.dispose();
    const wallMs = performance.now() - t0;
    console.log(`unprofiled step: ${wallMs.toFixed(0)} ms wall`);
    if (!Array.from(firstValue).every(Number.isFinite))
      throw new Error(`profile-step ${target}: the step's result is not finite`);

    t0 = performance.now();
    const times = await device.profile(async () => {
      for (let i = 0; i < args.steps; i++) {
        const r = workload.step();
        await r.data();
        r.dispose();
      }
    });
    const profiledWallMs = (performance.now() - t0) / args.steps;
    const totalMs = [...times.values()].reduce((s, t) => s + t.ms, 0) / args.steps;
    const byKey = rows(
      [...times.entries()].map(([k, t]) => [kernelLabel(k), t] as [string, { ms: number; count: number }]),
      args.steps,
      totalMs,
    );
    const families = new Map<string, { ms: number; count: number }>();
    for (const [k, t] of times) {
      const f = families.get(kernelFamily(k)) ?? { ms: 0, count: 0 };
      f.ms += t.ms;
      f.count += t.count;
      families.set(kernelFamily(k), f);
    }
    const byFamily = rows(families, args.steps, totalMs);
    const dispatches = byKey.reduce((s, r) => s + r.count, 0);
    console.log(
      `\nGPU time per step ${totalMs.toFixed(1)} ms over ${dispatches} dispatches (profiled wall ${profiledWallMs.toFixed(0)} ms, ` +
        `unprofiled wall ${wallMs.toFixed(0)} ms; ${args.steps} profiled step(s))\n`,
    );
    console.log(table('family', byFamily, 30));
    console.log('');
    console.log(table('kernel', byKey, 40));
    const out = args.out ?? fileURLToPath(new URL(`../results/profile-${target}.json`, import.meta.url));
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(
      out,
      `${JSON.stringify(
        {
          date: new Date().toISOString(),
          target,
          description: workload.description,
          adapter: device.report.description || device.report.device,
          host: hostCpu(),
          steps: args.steps,
          conv_algorithm: args.conv ?? 'auto',
          gpu_ms_per_step: totalMs,
          wall_ms_unprofiled: wallMs,
          families: byFamily,
          kernels: byKey,
        },
        null,
        2,
      )}\n`,
    );
    console.log(`\nwrote ${out}`);
    return 0;
  } finally {
    workload.dispose();
  }
}
