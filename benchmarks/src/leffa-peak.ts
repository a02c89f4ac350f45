/**
 * The device-memory peak of one released SD1.5 Leffa try-on in float16, as the buffer pool accounts it:
 * `npm run leffa-peak -w benchmarks -- [--height 1024 --width 768] [--steps 1] [--low-memory] [--dry]`.
 *
 * `ReleasedLeffa.generate` runs as a user's call runs it (Leffa loads for the schedule, VAE encode of person and
 * garment, reference UNet, generative UNet with guidance per step, VAE decode, tiled where the image does not fit
 * this adapter), on SD1.5-size weights in float16 (zeros: the values change no allocation) and a prepared example
 * (LeffaTransform arrays of random values; the preprocessing models are not part of it). Reported: the peak of
 * live buffers and of everything the pool holds (live + cached), overall and per phase, and the time.
 *
 * `--dry` runs it in `T.dryRun`: nothing executes on the device, every buffer is accounted as the real run takes
 * it. That is exact, not an estimate: the pool's decisions depend only on the order of acquires and releases, and
 * Leffa's sampling allocates nothing according to values it reads back (`leffa-dry-run.test.ts` checks the
 * equality on the released folder's small models; run this without and with --dry at a small size to check it at
 * SD1.5 size). Each run in its own process, so that both start from the same empty pool.
 */
import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS, LeffaModel, type LeffaPhase } from '@leffa-webgpu/models';
import { ReleasedLeffa, type ReleasedLeffaPrepared } from '@leffa-webgpu/pipelines';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const [H, W] = [arg('height', 1024), arg('width', 768)];
const steps = arg('steps', 1);
const lowMemory = process.argv.includes('--low-memory');
const dry = process.argv.includes('--dry');
await T.init();
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

const ARRAY_OF = { float32: Float32Array, float16: Uint16Array, int32: Int32Array } as const;

/** SD1.5 Leffa in float16 as loadLeffaWeights builds and loads it, with zero weights from host memory. */
async function zeroWeightsLeffa(beforeLoad?: (model: LeffaModel) => Promise<void>): Promise<LeffaModel> {
  const model = T.nn.withoutInit(() => new LeffaModel(LEFFA_CONFIGS.sd15)).half();
  await beforeLoad?.(model);
  const dict = new Map(
    [...model.stateDict()].map(([name, t]) => [
      name,
      T.hostTensor(new ARRAY_OF[t.dtype](t.size), t.shape, t.dtype, name, 'a benchmark weight'),
    ]),
  );
  model.loadStateDict(dict);
  return model.eval();
}

// A linear congruential generator for the inputs' values (they decide no allocation either).
let seed = 12345;
const uniform = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
const values = (n: number, f: () => number) => Float32Array.from({ length: n }, f);
const random = () => uniform() * 2 - 1;
const prepared = {
  inputs: {
    height: H,
    width: W,
    src: values(3 * H * W, random),
    ref: values(3 * H * W, random),
    mask: values(H * W, () => (uniform() < 0.5 ? 1 : 0)),
    densepose: values(3 * H * W, random),
  },
} as ReleasedLeffaPrepared;

const pipeline = new ReleasedLeffa(
  'viton_hd',
  {
    leffa: (request) => zeroWeightsLeffa(request?.beforeLoad),
    densepose: () => Promise.reject(new Error('leffa-peak: the preprocessing models are not part of this measurement')),
    parsing: () => Promise.reject(new Error('leffa-peak: no parsing')),
    openpose: () => Promise.reject(new Error('leffa-peak: no OpenPose')),
  },
  { size: [H, W] },
);

// Peaks per window: each phase's own work, and (lowMemory) the moves of parts before it, apart.
const device = T.activeDevice();
const phases = new Map<string, { live: number; held: number; count: number }>();
let current = 'load';
const closePhase = () => {
  const s = T.memoryStats();
  const p = phases.get(current) ?? { live: 0, held: 0, count: 0 };
  phases.set(current, {
    live: Math.max(p.live, s.peakLiveBytes),
    held: Math.max(p.held, s.peakHeldBytes),
    count: p.count + 1,
  });
};
const onPhase = (phase: LeffaPhase, stage: 'moving' | 'running') => {
  closePhase();
  device.pool.resetPeak();
  current = stage === 'moving' ? `moves for ${phase}` : phase;
};

device.pool.resetPeak();
const t0 = performance.now();
const run = () =>
  pipeline.generate(prepared, { steps, seed: 42, lowMemory, onPhase, log: (l) => console.log(`  ${l}`) });
const image = dry ? await T.dryRun(run) : await run();
closePhase();
const seconds = ((performance.now() - t0) / 1000).toFixed(1);
const peakLive = Math.max(...[...phases.values()].map((p) => p.live));
const peakHeld = Math.max(...[...phases.values()].map((p) => p.held));
console.log(
  `SD1.5 Leffa float16 at ${H}x${W}, ${steps} step(s), guidance 2.5, ${lowMemory ? 'lowMemory' : 'normal schedule'}, ` +
    `${dry ? 'dry run' : 'executed'} (${image.width}x${image.height} image) in ${seconds} s on ${device.report.description}`,
);
console.log(
  `  peak live: ${MiB(peakLive)} (${peakLive} bytes); peak held (live + cached): ${MiB(peakHeld)} (${peakHeld} bytes)`,
);
for (const [name, p] of phases)
  console.log(
    `  ${name.padEnd(19)} peak live ${MiB(p.live).padStart(12)}, held ${MiB(p.held).padStart(12)} (${p.count}x)`,
  );
await pipeline.dispose();
process.exit(0);
