/**
 * Device memory while SD1.5 Leffa (two UNets + VAE, float16) loads from a weights file, as the released pipeline
 * loads it: `npm run leffa-load -w benchmarks -- [--low-memory] [--file F]`.
 *
 * The file holds random float16 weights under LeffaModel's state-dict names (written once, 3.5 GB, to
 * --file, default in the OS temp folder). Then `loadLeffaWeights` reads it as `ReleasedLeffa.generate` does:
 * normally (every weight uploaded as it loads) or with `--low-memory` (`leffaLowMemoryPlacement`: every part but
 * the VAE encoder in host memory before the weights load). Reported: the peak of the live device buffers during
 * the load, what is held after it, and for comparison the weights of the whole model and of the first phase's
 * part (the VAE encoder), and what building the model allocates (the norms' ones and zeros, float32). Run each
 * schedule in its own process: the figures are the pool's, and one run's cached buffers would hide the other's.
 */
import { closeSync, existsSync, openSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS, LeffaModel } from '@leffa-webgpu/models';
import { leffaLowMemoryPlacement, loadLeffaWeights } from '@leffa-webgpu/pipelines';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
const lowMemory = process.argv.includes('--low-memory');
const fileArg = process.argv.indexOf('--file');
const file = fileArg > 0 ? process.argv[fileArg + 1]! : join(tmpdir(), 'leffa-sd15-float16-random.safetensors');
const config = LEFFA_CONFIGS.sd15;
const device = await T.init();
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** Writes the random float16 weights file (header, then each tensor's bits from one random block). */
function writeRandomWeights(path: string, shapes: [string, readonly number[]][]): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'F16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const fd = openSync(path, 'w');
  try {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, length);
    writeSync(fd, Buffer.from(json, 'utf8'));
    // A block of small uniform values (a linear congruential generator), repeated through the file.
    const values = new Float32Array(1 << 20);
    let seed = 12345;
    for (let i = 0; i < values.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      values[i] = ((seed / 2 ** 32) * 2 - 1) * 0.05;
    }
    const bytes = new Uint8Array(T.floatToHalf(values).buffer);
    let left = offset;
    let at = 0;
    while (left > 0) {
      const n = Math.min(left, bytes.byteLength - at);
      writeSync(fd, bytes, at, n);
      left -= n;
      at = (at + n) % bytes.byteLength;
    }
  } finally {
    closeSync(fd);
  }
}

// The model's state-dict names and shapes, without allocating its weights; what building it allocates.
const liveBefore = T.memoryStats().liveBytes;
const bare = T.nn.withoutInit(() => new LeffaModel(config));
const built = T.memoryStats().liveBytes - liveBefore;
const shapes = [...bare.stateDict()].map(([name, t]) => [name, t.shape] as [string, readonly number[]]);
bare.dispose();
if (!existsSync(file)) {
  const t0 = performance.now();
  writeRandomWeights(file, shapes);
  console.log(`wrote ${file} (${MiB(statSync(file).size)}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

// Everything queued is done before the cache is emptied (its buffers are destroyed).
await T.sync();
device.pool.emptyCache();
device.pool.resetPeak();
const before = T.memoryStats().liveBytes;
const t0 = performance.now();
const model = await loadLeffaWeights(file, {
  config,
  dtype: 'float16',
  ...(lowMemory ? { beforeLoad: leffaLowMemoryPlacement } : {}),
});
await T.sync();
const seconds = ((performance.now() - t0) / 1000).toFixed(1);
const stats = T.memoryStats();
const all = T.nn.deviceBytes([model]);
const first = T.nn.deviceBytes([model.vae.encoder, model.vae.quant_conv]);
console.log(`SD1.5 Leffa float16 loaded ${lowMemory ? 'for the low-memory schedule' : 'normally'} in ${seconds} s`);
console.log(
  `  peak live during the load: ${MiB(stats.peakLiveBytes - before)} (${stats.peakLiveBytes - before - first} bytes over the first phase's part)`,
);
console.log(`  live after the load:       ${MiB(stats.liveBytes - before)} (+ ${MiB(stats.pooledBytes)} cached)`);
console.log(`  whole model's weights:     ${MiB(all)}`);
console.log(`  first phase's part (VAE encoder + quant_conv): ${MiB(first)}`);
console.log(`  building allocates (norms, float32):           ${MiB(built)}`);
model.dispose();
process.exit(0);
