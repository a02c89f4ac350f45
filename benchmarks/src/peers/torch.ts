import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

export interface TorchResult {
  ms: number;
  output: Float32Array;
  version: string;
  threads: number;
}

/**
 * Times every case's PyTorch spec in one Python process (after ours and the peer, so they never share the
 * cores): inputs go through raw float32 files, the runner reports medians and writes each result back.
 */
export function runTorch(
  python: string,
  cases: { c: BenchCase; inputs: HostTensor[] }[],
  reps: number,
  warmup: number,
): Map<string, TorchResult> {
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
    const proc = spawnSync(python, [RUNNER], {
      input: JSON.stringify({ reps, warmup, cases: manifest }),
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    if (proc.error || proc.status !== 0) {
      throw new Error(`bench: the PyTorch runner failed (${python} ${RUNNER}): ${proc.error?.message ?? proc.stderr}`);
    }
    const report = JSON.parse(proc.stdout) as {
      version: string;
      threads: number;
      cases: { name: string; ms: number }[];
    };
    const results = new Map<string, TorchResult>();
    for (const [i, r] of report.cases.entries()) {
      const raw = readFileSync(manifest[i]!.out);
      const output = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      results.set(r.name, { ms: r.ms, output, version: report.version, threads: report.threads });
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
