import { cpus } from 'node:os';

/**
 * The CPU under a CPU adapter, recorded beside every figure: lavapipe runs the same kernels at very different shares
 * of different CPUs (BENCHMARKS.md, "The same code on an AMD EPYC host").
 */
export function hostCpu(): { cpu: string; cores: number } {
  const all = cpus();
  return { cpu: all[0]?.model.trim() ?? 'unknown', cores: all.length };
}
