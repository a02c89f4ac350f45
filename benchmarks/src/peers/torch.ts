import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchCase, HostTensor } from '../case.js';

/** Debian's python3-torch: the oracle the parity tests use too (not the python3 on PATH). */
export const TORCH_PYTHON = process.env.LEFFA_TORCH_PYTHON ?? '/usr/bin/python3';
const RUNNER = fileURLToPath(new URL('../../torch_runner.py', import.meta.url));

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
export function runTorch(cases: { c: BenchCase; inputs: HostTensor[] }[], reps: number, warmup: number): Map<string, TorchResult> {
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
    const proc = spawnSync(TORCH_PYTHON, [RUNNER], {
      input: JSON.stringify({ reps, warmup, cases: manifest }),
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    if (proc.error || proc.status !== 0) {
      throw new Error(`bench: the PyTorch runner failed (${TORCH_PYTHON} ${RUNNER}): ${proc.error?.message ?? proc.stderr}`);
    }
    const report = JSON.parse(proc.stdout) as { version: string; threads: number; cases: { name: string; ms: number }[] };
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
