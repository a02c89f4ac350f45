import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { BenchCase, HostTensor } from '../case.js';

/** Debian's python3-torch: the oracle the parity tests use too (not the python3 on PATH). */
export const TORCH_PYTHON = process.env.LEFFA_TORCH_PYTHON ?? '/usr/bin/python3';
/**
 * pip's PyTorch 2.x CPU build (MKL, oneDNN) in the venv `benchmarks/setup-torch.sh` creates: the speed peer,
 * what a PyTorch user gets on this CPU. Absent when that script has not run (or pip could not install it).
 */
export const TORCH2_PYTHON =
  process.env.LEFFA_TORCH2_PYTHON ?? fileURLToPath(new URL('../../.venv-torch/bin/python', import.meta.url));
const RUNNER = fileURLToPath(new URL('../../torch_runner.py', import.meta.url));

/** The PyTorch 2.x interpreter, or why there is none. */
export function torch2Python(): { python: string } | { absent: string } {
  if (!existsSync(TORCH2_PYTHON))
    return { absent: `no ${TORCH2_PYTHON} (run benchmarks/setup-torch.sh, or set LEFFA_TORCH2_PYTHON)` };
  const probe = spawnSync(TORCH2_PYTHON, ['-c', 'import numpy, torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0)
    return {
      absent: `${TORCH2_PYTHON} cannot import torch and numpy: ${(probe.stderr ?? '').trim().split('\n').pop()}`,
    };
  return { python: TORCH2_PYTHON };
}

/** One case's PyTorch result: its output (the first run's) and the build that computed it. */
export interface TorchResult {
  output: Float32Array;
  version: string;
  threads: number;
}

/**
 * PyTorch as a peer: one Python process (torch_runner.py) that sets every case up once, then times a case whenever
 * asked, so its timings can alternate with ours in the same run (a shared host's slow spells then hit both). Between
 * requests it waits on stdin and leaves the cores to us.
 */
export class TorchPeer {
  private readonly pending: ((line: string) => void)[] = [];
  private stderr = '';
  private exited: string | null = null;

  private constructor(
    private readonly proc: ChildProcessWithoutNullStreams,
    private readonly python: string,
    private readonly index: Map<string, number>,
    readonly results: Map<string, TorchResult>,
  ) {}

  /** Starts the runner, sets every case with a torch body up and reads back each one's first result. */
  static async start(python: string, cases: { c: BenchCase; inputs: HostTensor[] }[]): Promise<TorchPeer> {
    const dir = mkdtempSync(join(tmpdir(), 'leffa-bench-'));
    try {
      const manifest = cases
        .filter(({ c }) => c.torch)
        .map(({ c, inputs }, i) => ({
          name: c.name,
          setup: c.torch!.setup ?? '',
          run: c.torch!.run,
          inputs: inputs.map((x, j) => {
            const file = join(dir, `case${i}_in${j}.f32`);
            writeFileSync(file, new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength));
            return { file, shape: x.shape };
          }),
          out: join(dir, `case${i}_out.f32`),
        }));
      const proc = spawn(python, [RUNNER], { stdio: ['pipe', 'pipe', 'pipe'] });
      const peer = new TorchPeer(proc, python, new Map(manifest.map((m, i) => [m.name, i])), new Map());
      createInterface({ input: proc.stdout }).on('line', (line) => peer.pending.shift()?.(line));
      proc.stderr.on('data', (d) => {
        peer.stderr += d;
      });
      const stop = (why: string) => {
        peer.exited ??= why;
        for (const settle of peer.pending.splice(0)) settle(''); // each fails, naming why
      };
      proc.on('error', (e) => stop(`could not run (${e.message})`));
      proc.on('exit', (code, signal) => stop(`exited (${signal ?? code})`));
      const hello = JSON.parse(await peer.request({ cases: manifest })) as { version: string; threads: number };
      for (const [i, m] of manifest.entries()) {
        const raw = readFileSync(manifest[i]!.out);
        const output = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
        peer.results.set(m.name, { output, version: hello.version, threads: hello.threads });
      }
      return peer;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** `reps` timings (ms) of one case after `warmup` untimed runs; null for a case without a torch body. */
  async time(name: string, reps: number, warmup: number): Promise<number[] | null> {
    const i = this.index.get(name);
    if (i === undefined) return null;
    return (JSON.parse(await this.request({ case: i, reps, warmup })) as { ms: number[] }).ms;
  }

  close(): void {
    this.proc.stdin.end();
  }

  private request(message: unknown): Promise<string> {
    return new Promise((resolve, reject) => {
      const fail = () =>
        reject(new Error(`bench: the PyTorch runner (${this.python} ${RUNNER}) ${this.exited}: ${this.stderr.trim()}`));
      if (this.exited) return fail();
      this.pending.push((line) => (this.exited ? fail() : resolve(line)));
      this.proc.stdin.write(`${JSON.stringify(message)}\n`);
    });
  }
}
