import type * as T from '@leffa-webgpu/core';

function check(name: string, what: string, ok: boolean, v: number, want: string): void {
  if (!ok) throw new Error(`${name}: ${what} must be ${want}, got ${v}`);
}

export interface SCHPCyclicalOptions {
  baseLr: number;
  /** Floor of every phase (SCHP: baseLr / 100). */
  etaMin?: number;
  /** Linear warmup from etaMin to baseLr (SCHP: 10 epochs). */
  warmupSteps?: number;
  /** Where the cosine annealing from baseLr to etaMin ends and the cycles begin (SCHP: epoch 100). */
  cyclicalStart?: number;
  /** Peak of each cycle (SCHP: baseLr / 2). */
  cyclicalBaseLr?: number;
  /** Length of each cycle (SCHP: 10 epochs). */
  cyclicalSteps?: number;
}

/**
 * SCHP's SGDRScheduler (Self-Correction for Human Parsing): linear warmup from etaMin to baseLr, cosine
 * annealing down to etaMin at `cyclicalStart`, then repeated cosine cycles from cyclicalBaseLr down towards
 * etaMin, each `cyclicalSteps` long (one self-correction round per cycle). SCHP steps it once per epoch.
 * Defaults are SCHP's training script's, derived from baseLr.
 */
export function schpCyclicalLR(options: SCHPCyclicalOptions): T.optim.LRSchedule {
  const name = 'schpCyclicalLR';
  const { baseLr } = options;
  const lrOk = (v: number) => Number.isFinite(v) && v >= 0;
  check(name, 'baseLr', lrOk(baseLr), baseLr, 'a finite number >= 0');
  const etaMin = options.etaMin ?? baseLr / 100;
  const warmup = options.warmupSteps ?? 10;
  const start = options.cyclicalStart ?? 100;
  const cycleLr = options.cyclicalBaseLr ?? baseLr / 2;
  const cycle = options.cyclicalSteps ?? 10;
  check(name, 'etaMin', lrOk(etaMin), etaMin, 'a finite number >= 0');
  check(name, 'cyclicalBaseLr', lrOk(cycleLr), cycleLr, 'a finite number >= 0');
  check(name, 'warmupSteps', Number.isInteger(warmup) && warmup >= 0, warmup, 'an integer >= 0');
  check(name, 'cyclicalSteps', Number.isInteger(cycle) && cycle >= 1, cycle, 'an integer >= 1');
  if (!Number.isInteger(start) || start <= warmup) {
    throw new Error(`${name}: cyclicalStart must be an integer after the warmup (> ${warmup}), got ${start}`);
  }
  const cosine = (hi: number, t: number, period: number) =>
    etaMin + ((hi - etaMin) * (1 + Math.cos((Math.PI * t) / period))) / 2;
  return (step) => {
    check(name, 'step', Number.isInteger(step) && step >= 0, step, 'an integer >= 0');
    if (step < warmup) return etaMin + (step * (baseLr - etaMin)) / warmup;
    if (step < start) return cosine(baseLr, step - warmup, start - warmup);
    return cosine(cycleLr, (step - start) % cycle, cycle);
  };
}
