/**
 * Learning-rate schedules as plain functions of the step (0-based; the lr to use for that step), so a
 * training loop sets `optimizer.lr = schedule(step)` before `optimizer.step()` and resuming needs nothing
 * but the step count. Each matches a PyTorch scheduler stepped once per optimizer step.
 */
export type LRSchedule = (step: number) => number;

function checkStep(name: string, step: number): void {
  if (!Number.isInteger(step) || step < 0) throw new Error(`${name}: step must be an integer >= 0, got ${step}`);
}

function checkPositiveInt(name: string, what: string, v: number, allowZero = false): void {
  if (!Number.isInteger(v) || v < (allowZero ? 0 : 1)) {
    throw new Error(`${name}: ${what} must be an integer ${allowZero ? '>= 0' : '>= 1'}, got ${v}`);
  }
}

function checkLrValue(name: string, what: string, v: number): void {
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name}: ${what} must be a finite number >= 0, got ${v}`);
}

export interface ConstantLROptions {
  /** Steps of linear warmup from 0 (lr * step / warmupSteps), as diffusers' constant_with_warmup. */
  warmupSteps?: number;
}

/** baseLr throughout, after an optional linear warmup (LambdaLR with min(1, step / warmupSteps)). */
export function constantLR(baseLr: number, options: ConstantLROptions = {}): LRSchedule {
  const warmup = options.warmupSteps ?? 0;
  checkLrValue('constantLR', 'baseLr', baseLr);
  checkPositiveInt('constantLR', 'warmupSteps', warmup, true);
  return (step) => {
    checkStep('constantLR', step);
    return step < warmup ? (baseLr * step) / warmup : baseLr;
  };
}

export interface CosineAnnealingOptions {
  baseLr: number;
  /** Half period: the lr reaches etaMin at step tMax. */
  tMax: number;
  etaMin?: number;
}

/**
 * torch.optim.lr_scheduler.CosineAnnealingLR (without restarts) in closed form:
 * etaMin + (baseLr - etaMin) (1 + cos(pi step / tMax)) / 2. Past tMax it rises again, as PyTorch's does.
 */
export function cosineAnnealingLR(options: CosineAnnealingOptions): LRSchedule {
  const { baseLr, tMax, etaMin = 0 } = options;
  checkLrValue('cosineAnnealingLR', 'baseLr', baseLr);
  checkLrValue('cosineAnnealingLR', 'etaMin', etaMin);
  checkPositiveInt('cosineAnnealingLR', 'tMax', tMax);
  return (step) => {
    checkStep('cosineAnnealingLR', step);
    return etaMin + ((baseLr - etaMin) * (1 + Math.cos((Math.PI * step) / tMax))) / 2;
  };
}

export interface WarmupCosineOptions {
  baseLr: number;
  /** Linear warmup from 0: lr = baseLr * step / warmupSteps for step < warmupSteps. */
  warmupSteps: number;
  /** The step at which the cosine reaches minLr; later steps stay there. */
  totalSteps: number;
  minLr?: number;
}

/**
 * Linear warmup then cosine decay to minLr (diffusers/transformers' cosine schedule with warmup, with a
 * floor): a LambdaLR with factor step / warmup, then minLr/baseLr + (1 - minLr/baseLr) (1 + cos(pi progress)) / 2.
 */
export function warmupCosineLR(options: WarmupCosineOptions): LRSchedule {
  const { baseLr, warmupSteps, totalSteps, minLr = 0 } = options;
  const name = 'warmupCosineLR';
  checkLrValue(name, 'baseLr', baseLr);
  checkLrValue(name, 'minLr', minLr);
  checkPositiveInt(name, 'warmupSteps', warmupSteps, true);
  checkPositiveInt(name, 'totalSteps', totalSteps);
  if (totalSteps < warmupSteps)
    throw new Error(`${name}: totalSteps ${totalSteps} is shorter than warmupSteps ${warmupSteps}`);
  return (step) => {
    checkStep(name, step);
    if (step < warmupSteps) return (baseLr * step) / warmupSteps;
    const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
    return minLr + ((baseLr - minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
  };
}
