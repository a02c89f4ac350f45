/**
 * `npm run bench [-- ci|full]` at the root, or with options
 * `npm run bench -w benchmarks -- [--profile ci|full] [--filter text] [--reps n] [--rounds n] [--warmup n] [--skip-torch] [--out file]`
 * (the root script forwards its arguments without a `--`, so npm keeps the flags and passes on bare words).
 * `npm run bench -w benchmarks -- --profile-step vae|unet|sd15|sd15-attn|leffa|conv [--steps n] [--conv direct|winograd|winograd4|sliding] [--out file]` instead prints the
 * GPU time per kernel of one training step (see profile-step.ts).
 *
 * Runs every case of the profile with our library, tfjs-backend-webgpu on the same Dawn adapter, Debian's
 * PyTorch 1.13 on the CPU (the parity oracle) and pip's PyTorch 2.x (MKL, oneDNN; the speed peer, from the venv
 * benchmarks/setup-torch.sh makes; its absence is printed); checks each result against the others first (a
 * mismatch fails the run, speed never does); prints the adapter, the FMA ceiling and a table; writes
 * results/latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import type { BenchCase, HostTensor, Profile } from './case.js';
import { CASES } from './cases/index.js';
import { measureFmaCeiling } from './ceiling.js';
import { hostCpu } from './host.js';
import { PROFILE_TARGETS, type ProfileTarget, profileStep } from './profile-step.js';
import { startTfjs } from './peers/tfjs.js';
import { TORCH_PYTHON, TorchPeer, torch2Python } from './peers/torch.js';
import { type CaseResult, formatBaselines, formatRounds, formatTable } from './report.js';
import { median, normalisedError, timeInterleaved } from './timing.js';

interface Options {
  profile: Profile;
  filter: string | null;
  reps: number;
  /** Rounds of (PyTorch, then ours and tfjs) per case, `reps` timings each: PyTorch's and our times come from the same spells. */
  rounds: number;
  warmup: number;
  skipTorch: boolean;
  out: string;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    profile: 'full',
    filter: null,
    reps: 5,
    rounds: 3,
    warmup: 2,
    skipTorch: false,
    out: fileURLToPath(new URL('../results/latest.json', import.meta.url)),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench: ${arg} needs a value`);
      return v;
    };
    if (arg === '--profile') {
      const p = value();
      if (p !== 'ci' && p !== 'full') throw new Error(`bench: --profile must be 'ci' or 'full', got '${p}'`);
      opts.profile = p;
    } else if (arg === '--filter') opts.filter = value();
    else if (arg === '--reps') opts.reps = Number(value());
    else if (arg === '--rounds') opts.rounds = Number(value());
    else if (arg === '--warmup') opts.warmup = Number(value());
    else if (arg === '--skip-torch') opts.skipTorch = true;
    else if (arg === '--out') opts.out = value();
    else if (arg === 'ci' || arg === 'full') opts.profile = arg;
    else throw new Error(`bench: unknown argument '${arg}'`);
  }
  if (!(opts.reps >= 5))
    throw new Error(`bench: --reps must be at least 5 (medians of fewer are noise), got ${opts.reps}`);
  if (!(Number.isInteger(opts.rounds) && opts.rounds >= 1))
    throw new Error(`bench: --rounds must be a whole number of at least 1, got ${opts.rounds}`);
  return opts;
}

/** `--profile-step <target> [--steps n] [--out file]`, or null when the arguments ask for the benchmark table. */
function parseProfileStep(
  argv: string[],
): { target: ProfileTarget; steps: number; out?: string; conv?: T.ConvAlgorithm } | null {
  const at = argv.indexOf('--profile-step');
  if (at < 0) return null;
  const target = argv[at + 1] as ProfileTarget;
  if (!PROFILE_TARGETS.includes(target))
    throw new Error(`bench: --profile-step needs one of ${PROFILE_TARGETS.join(', ')}, got '${argv[at + 1] ?? ''}'`);
  const rest = argv.filter((_, i) => i !== at && i !== at + 1);
  let steps = 1;
  let out: string | undefined;
  let conv: T.ConvAlgorithm | undefined;
  for (let i = 0; i < rest.length; i++) {
    const v = rest[i + 1];
    if (rest[i] === '--steps' && v !== undefined && Number.isInteger(Number(v)) && Number(v) >= 1)
      steps = Number(rest[++i]);
    else if (rest[i] === '--out' && v !== undefined) out = rest[++i];
    else if (rest[i] === '--conv' && (v === 'direct' || v === 'winograd' || v === 'winograd4' || v === 'sliding'))
      conv = rest[++i] as T.ConvAlgorithm;
    else
      throw new Error(
        `bench: --profile-step takes only --steps <n >= 1>, --conv direct|winograd|winograd4|sliding and --out <file>, got '${rest[i]}'`,
      );
  }
  return { target, steps, out, conv };
}

async function main(): Promise<number> {
  const step = parseProfileStep(process.argv.slice(2));
  if (step) return profileStep(step.target, step);
  const opts = parseArgs(process.argv.slice(2));
  // One Dawn instance for everyone: our device and the tfjs peer both come from this navigator.gpu.
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const dawn = (await import('webgpu')) as { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  (globalThis as { navigator?: unknown }).navigator = { gpu };
  const device = await T.init();
  const tfjs = await startTfjs(gpu);

  const r = device.report;
  const adapter = {
    vendor: r.vendor,
    architecture: r.architecture,
    device: r.device,
    description: r.description,
    backend: 'Dawn (webgpu npm package)',
    isCpu: r.isCpu,
    features: r.features,
    matmulKernel: T.matmulVariantFor(device),
    tfjsAdapter: tfjs.adapter,
  };
  console.log(
    `adapter: ${r.description || r.device} [${r.vendor} ${r.architecture}] via ${adapter.backend}${r.isCpu ? ' (CPU)' : ''}`,
  );
  const host = hostCpu();
  console.log(`host CPU: ${host.cpu}, ${host.cores} cores`);
  console.log(`features: ${r.features.join(', ')}`);
  console.log(`matmul kernel: ${adapter.matmulKernel}`);
  const ceiling = await measureFmaCeiling(device);
  console.log(
    `FMA ceiling: ${ceiling.gflops.toFixed(1)} GFLOP/s (micro-kernel, ${ceiling.chains} independent fma chains per invocation)`,
  );

  const selected = CASES.filter(
    (c) => (opts.profile === 'full' || c.profile === 'ci') && (!opts.filter || c.name.includes(opts.filter)),
  );
  if (selected.length === 0)
    throw new Error(
      `bench: no case matches profile '${opts.profile}'${opts.filter ? ` and filter '${opts.filter}'` : ''}`,
    );
  const prepared = selected.map((c) => ({ c, inputs: c.inputs() }));

  let torch: TorchPeer | null = null;
  let torch2: TorchPeer | null = null;
  let torch2Absent: string | null = 'skipped (--skip-torch)';
  if (!opts.skipTorch) {
    console.log(`profile ${opts.profile}: ${selected.length} cases; setting PyTorch up (its own processes)...`);
    torch = await TorchPeer.start(TORCH_PYTHON, prepared);
    const any = torch.results.values().next().value;
    if (any) console.log(`PyTorch ${any.version} (parity oracle), ${any.threads} threads`);
    const py2 = torch2Python();
    if ('python' in py2) {
      torch2 = await TorchPeer.start(py2.python, prepared);
      torch2Absent = null;
      const any2 = torch2.results.values().next().value;
      if (any2) console.log(`PyTorch ${any2.version} (speed peer), ${any2.threads} threads`);
    } else {
      torch2Absent = py2.absent;
      console.log(`PyTorch 2.x speed peer absent: ${py2.absent}`);
    }
  }

  const results: CaseResult[] = [];
  const failures: string[] = [];
  for (const { c, inputs } of prepared) {
    const result = await runCase(c, inputs, device, tfjs, torch, torch2, ceiling.gflops, opts, failures);
    if (result) {
      results.push(result);
      const ms = (x: number | null) => x?.toFixed(2) ?? '-';
      console.log(
        `  ${c.name}: ours ${ms(result.ours_ms)} ms, tfjs ${ms(result.peer_ms)} ms, torch2 ${ms(result.torch2_ms)} ms, torch1.13 ${ms(result.torch_ms)} ms`,
      );
    }
  }

  console.log(`\n${formatTable(results)}\n`);
  const perRound = formatRounds(results);
  if (perRound) console.log(`x t2 round by round (PyTorch 2.x timed just before ours in each):\n${perRound}\n`);
  const baselines = formatBaselines(results);
  if (baselines) console.log(`baselines (our own unfused paths; x base = their ms / ours):\n${baselines}\n`);
  console.log(
    `medians of ${opts.rounds} rounds x ${opts.reps} timed reps after ${opts.warmup} warm-up runs; ours and tfjs interleaved, PyTorch (its own processes, idle meanwhile) timed before ours in every round.`,
  );
  console.log(
    'x tfjs / x t2 / x t1.13: speedup of ours (their ms / our ms; below 1 = slower). err: max|ours - theirs| / max|theirs|.',
  );
  if (torch2Absent) console.log(`PyTorch 2.x speed peer absent: ${torch2Absent}`);
  mkdirSync(dirname(opts.out), { recursive: true });
  torch?.close();
  torch2?.close();
  const torchInfo = torch?.results.values().next().value;
  const torch2Info = torch2?.results.values().next().value;
  writeFileSync(
    opts.out,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        profile: opts.profile,
        reps: opts.reps,
        rounds: opts.rounds,
        adapter,
        host,
        fma_ceiling_gflops: ceiling.gflops,
        torch: torchInfo ? { version: torchInfo.version, threads: torchInfo.threads } : null,
        torch2: torch2Info ? { version: torch2Info.version, threads: torch2Info.threads } : { absent: torch2Absent },
        cases: results,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`wrote ${opts.out}`);
  if (failures.length > 0) {
    console.error(`\nbench: ${failures.length} result check(s) failed:\n  ${failures.join('\n  ')}`);
    return 1;
  }
  return 0;
}

async function runCase(
  c: BenchCase,
  inputs: HostTensor[],
  device: T.Device,
  tfjs: Awaited<ReturnType<typeof startTfjs>>,
  torchPeer: TorchPeer | null,
  torch2Peer: TorchPeer | null,
  ceiling: number,
  opts: Options,
  failures: string[],
): Promise<CaseResult | null> {
  const { tf } = tfjs;
  const torch = torchPeer?.results.get(c.name) ?? null;
  const torch2 = torch2Peer?.results.get(c.name) ?? null;
  const ourInputs = inputs.map((x) => T.tensor(x.data, x.shape));
  const tfInputs = inputs.map((x) => tf.tensor(x.data, x.shape));
  const ours = c.ours(ourInputs, device);
  const peer = c.tfjs?.(tf, tfInputs, tfjs.submit) ?? null;
  let base: ReturnType<NonNullable<BenchCase['baseline']>['impl']> | null = null;
  try {
    // Correctness first: ours against the oracle and the peer (and our peak memory on the way).
    const { data: ourData, peakMb } = await checkedRun(ours.run, device);
    const tol = c.tol ?? 1e-4;
    if (!ourData.every(Number.isFinite)) {
      failures.push(`${c.name}: our result has non-finite values`);
      return null;
    }
    let baselineError: string | null = null;
    let baselinePeakMb: number | null = null;
    if (c.baseline) {
      try {
        base = c.baseline.impl(ourInputs, device);
        const b = await checkedRun(base.run, device);
        baselinePeakMb = b.peakMb;
        const errBase = normalisedError(b.data, torch?.output ?? ourData);
        if (!(errBase <= tol))
          failures.push(
            `${c.name}: baseline '${c.baseline.label}' differs from the reference (error ${errBase.toExponential(2)})`,
          );
      } catch (e) {
        baselineError = (e as Error).message.split('\n')[0]!.slice(0, 200);
        base?.dispose?.();
        base = null;
      }
    }
    let errPeer: number | null = null;
    let errTorch: number | null = null;
    let errTorch2: number | null = null;
    if (peer) {
      const peerOut = tf.tidy(() => (c.tfjsToOurs ? c.tfjsToOurs(tf, peer.run()) : peer.run()));
      errPeer = normalisedError(ourData, (await peerOut.data()) as Float32Array);
      peerOut.dispose();
    }
    if (torch) errTorch = normalisedError(ourData, torch.output);
    if (torch2) errTorch2 = normalisedError(ourData, torch2.output);
    const bad = [
      errPeer !== null && !(errPeer <= tol) ? `tfjs (error ${errPeer.toExponential(2)})` : null,
      errTorch !== null && !(errTorch <= tol) ? `torch ${torch!.version} (error ${errTorch.toExponential(2)})` : null,
      errTorch2 !== null && !(errTorch2 <= tol)
        ? `torch ${torch2!.version} (error ${errTorch2.toExponential(2)})`
        : null,
    ].filter(Boolean);
    if (bad.length > 0) {
      failures.push(`${c.name}: result differs from ${bad.join(' and ')}, tolerance ${tol}`);
      return null;
    }

    const impls = [
      {
        run: async () => {
          const out = T.tidy(ours.run);
          await device.sync();
          out.dispose();
        },
      },
      ...(base
        ? [
            {
              run: async () => {
                const out = T.tidy(base!.run);
                await device.sync();
                out.dispose();
              },
            },
          ]
        : []),
      ...(peer
        ? [
            {
              run: async () => {
                const out = tf.tidy(peer.run);
                await tfjs.sync();
                out.dispose();
              },
            },
          ]
        : []),
    ];
    // Rounds: PyTorch first (both builds), then ours and the peers interleaved, so each side's times come from the
    // same spells of the host; every figure is the median of all of its rounds' reps.
    const times: number[][] = impls.map(() => []);
    const [torchTimes, torch2Times]: number[][] = [[], []];
    const rounds: { ours_ms: number; torch2_ms: number | null }[] = [];
    for (let r = 0; r < opts.rounds; r++) {
      const warmup = r === 0 ? opts.warmup : 1;
      // null where a build or the case's torch body is absent
      const t1 = (await torchPeer?.time(c.name, opts.reps, warmup)) ?? null;
      const t2 = (await torch2Peer?.time(c.name, opts.reps, warmup)) ?? null;
      if (t1) torchTimes.push(...t1);
      if (t2) torch2Times.push(...t2);
      const round = await timeInterleaved(impls, warmup, opts.reps);
      round.forEach((t, i) => times[i]!.push(...t));
      rounds.push({ ours_ms: median(round[0]!), torch2_ms: t2 ? median(t2) : null });
    }
    const ourTimes = times[0]!;
    const baseTimes = base ? times[1]! : null;
    const peerTimes = peer ? times[base ? 2 : 1]! : [];
    const oursMs = median(ourTimes);
    const baseMs = baseTimes ? median(baseTimes) : null;
    const peerMs = peer ? median(peerTimes) : null;
    const torchMs = torchTimes.length > 0 ? median(torchTimes) : null;
    const torch2Ms = torch2Times.length > 0 ? median(torch2Times) : null;
    const gflops = c.flops ? c.flops / oursMs / 1e6 : null;
    return {
      case: c.name,
      ours_ms: oursMs,
      peer_ms: peerMs,
      torch_ms: torchMs,
      ratio: peerMs !== null ? peerMs / oursMs : null,
      ratio_torch: torchMs !== null ? torchMs / oursMs : null,
      torch2_ms: torch2Ms,
      ratio_torch2: torch2Ms !== null ? torch2Ms / oursMs : null,
      gflops,
      gbps: c.bytes ? c.bytes / oursMs / 1e6 : null,
      pct_fma_ceiling: gflops !== null ? (100 * gflops) / ceiling : null,
      us_per_op: c.opsPerRun ? (oursMs * 1000) / c.opsPerRun : null,
      err_peer: errPeer,
      err_torch: errTorch,
      err_torch2: errTorch2,
      peak_mb: peakMb,
      baseline: c.baseline?.label ?? null,
      baseline_ms: baseMs,
      ratio_baseline: baseMs !== null ? baseMs / oursMs : null,
      baseline_peak_mb: baselinePeakMb,
      baseline_error: baselineError,
      ours_times_ms: ourTimes,
      peer_times_ms: peerTimes,
      torch2_times_ms: torch2Times,
      rounds,
    };
  } finally {
    base?.dispose?.();
    ours.dispose?.();
    peer?.dispose?.();
    T.dispose(ourInputs);
    tf.dispose(tfInputs);
  }
}

/** Runs one iteration, reads its result back, and measures the GPU memory it needed beyond what was live. */
async function checkedRun(run: () => T.Tensor, device: T.Device): Promise<{ data: Float32Array; peakMb: number }> {
  const before = device.memoryStats().liveBytes;
  device.pool.resetPeak();
  const out = T.tidy(run);
  const data = await out.data();
  const peakMb = (device.memoryStats().peakLiveBytes - before) / 2 ** 20;
  out.dispose();
  return { data, peakMb };
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  },
);
