import type * as T from '@leffa-webgpu/core';
import type * as TF from '@tensorflow/tfjs-core';

/**
 * One benchmark: the same computation on the same seeded inputs, run by us, by tfjs-backend-webgpu on
 * the same adapter, and by PyTorch on the CPU. Adding a case is one file exporting one of these (or a
 * list) plus a line in cases/index.ts.
 */
export type Profile = 'ci' | 'full';

export interface HostTensor {
  data: Float32Array;
  shape: number[];
}

/** Work an implementation records per timed run; the harness submits it and waits for the device. */
export interface Runner<Out> {
  /** One iteration. Runs inside a tidy scope: intermediates are freed, the returned tensor is checked. */
  run: () => Out;
  /** Frees what setup made (weights, optimizer state); inputs are freed by the harness. */
  dispose?: () => void;
}

export interface BenchCase {
  name: string;
  /** 'ci' cases also run in the full profile. */
  profile: Profile;
  /** Seeded host inputs shared by every implementation (see `randomInput`). */
  inputs: () => HostTensor[];
  /** Floating-point operations per run (multiply-add = 2), for GFLOP/s and the share of the FMA ceiling. */
  flops?: number;
  /** Bytes read and written per run, for GB/s (memory-bound cases). */
  bytes?: number;
  /** Operations per run, for cases that measure per-op overhead (reported as microseconds per op). */
  opsPerRun?: number;
  /** Our implementation, given the inputs uploaded as tensors. */
  ours: (x: T.Tensor[], device: T.Device) => Runner<T.Tensor>;
  /**
   * A second implementation in our own library (e.g. the materialised path a fused kernel replaces): checked
   * against the oracle and timed alongside, with its peak memory. If it cannot run on this adapter (a buffer
   * over the binding limit), the reason is reported instead.
   */
  baseline?: { label: string; impl: (x: T.Tensor[], device: T.Device) => Runner<T.Tensor> };
  /** The tfjs-backend-webgpu peer, given the inputs as tfjs tensors. */
  tfjs?: (tf: typeof TF, x: TF.Tensor[], submit: () => void) => Runner<TF.Tensor>;
  /** Brings the peer's result into our layout for the check (e.g. NHWC -> NCHW); not timed. */
  tfjsToOurs?: (tf: typeof TF, out: TF.Tensor) => TF.Tensor;
  /**
   * The PyTorch oracle: Python run once with the inputs bound to x0, x1, ... (float32 CPU tensors) and
   * `torch`, `F` in scope (`setup`), then the body of a function returning the result (`run`), timed.
   */
  torch?: { setup?: string; run: string };
  /** Largest normalised error max|ours - ref| / max|ref| accepted against each reference (default 1e-4). */
  tol?: number;
}

/** A seeded uniform [-scale, scale) input (mulberry32): identical on every run and for every peer. */
export function randomInput(shape: number[], seed: number, scale = 1): HostTensor {
  let s = seed >>> 0;
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    data[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return { data, shape };
}
