import { emaKernel, gridGroups, optimGroups } from '@leffa-webgpu/kernels-wgsl';
import { launch } from '../forward/launch.js';
import { Module } from '../nn/module.js';
import { dispose, keep } from '../tensor/scope.js';
import { formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { cloneTensor, copyInto } from './copy.js';
import { chunks, multiLayout, splitByVec4, tensorsPerDispatch } from './multi-tensor.js';
import { kindOf } from './optimizer.js';

export interface EMAWarmup {
  /** Defaults 1 and 2/3: decay = 1 - (1 + t / invGamma)^-power after t averaging steps (diffusers' EMA warmup). */
  invGamma?: number;
  power?: number;
}

export interface EMAOptions {
  /** Upper bound of the decay (the decay itself without warmup). */
  decay?: number;
  /** Lower bound of the decay once averaging has started. */
  minDecay?: number;
  /** The first `updateAfterStep` updates copy the parameters instead of averaging them. */
  updateAfterStep?: number;
  /** Ramps the decay up from 0 (true for the defaults), so early averages are not dominated by the init. */
  warmup?: boolean | EMAWarmup;
}

/** JSON-able part of an EMA's state. */
export interface EMAMeta {
  type: 'EMA';
  decay: number;
  minDecay: number;
  updateAfterStep: number;
  warmup: { invGamma: number; power: number } | null;
  /** Number of `update()` calls so far. */
  step: number;
}

/** Shadow tensors by parameter name (they are the EMA's own: read, do not dispose) plus the hyper-parameters. */
export interface EMAStateDict {
  tensors: Map<string, Tensor>;
  meta: EMAMeta;
}

/**
 * Exponential moving average of parameters ("EMA weights"), as diffusers' EMAModel:
 *   shadow = lerp(shadow, param, 1 - decay_t)
 * with decay_t = 0 (a copy) for the first `updateAfterStep` updates, then `decay`, or with warmup
 * min(decay, max(minDecay, 1 - (1 + t / invGamma)^-power)) where t counts the averaging updates.
 * One fused kernel per parameter per update. Shadows are keyed by parameter name (a module's dotted names, a
 * map's keys, or '0', '1', ... for a list), so `ema.safetensors` loads straight into a model for inference when
 * the names are the model's: average part of a model through a map of its named parameters, not a bare list.
 *
 * For evaluation with the averaged weights: `store()`, `copyTo()`, evaluate, `restore()`.
 */
export class EMA {
  readonly decay: number;
  readonly minDecay: number;
  readonly updateAfterStep: number;
  readonly warmup: { invGamma: number; power: number } | null;
  /** Number of `update()` calls so far. */
  step = 0;
  private readonly names: string[];
  private readonly params: Tensor[];
  private shadows: Tensor[];
  private backup: Tensor[] | null = null;

  constructor(source: Module | ReadonlyMap<string, Tensor> | readonly Tensor[], options: EMAOptions = {}) {
    const { decay = 0.9999, minDecay = 0, updateAfterStep = 0, warmup = false } = options;
    const named = namedTensors('EMA', source);
    if (named.length === 0) throw new Error('EMA: got no parameters');
    if (!(decay >= 0 && decay <= 1)) throw new Error(`EMA: decay must be in [0, 1], got ${decay}`);
    if (!(minDecay >= 0 && minDecay <= decay)) throw new Error(`EMA: minDecay must be in [0, decay], got ${minDecay}`);
    if (!Number.isInteger(updateAfterStep) || updateAfterStep < 0) {
      throw new Error(`EMA: updateAfterStep must be an integer >= 0, got ${updateAfterStep}`);
    }
    this.decay = decay;
    this.minDecay = minDecay;
    this.updateAfterStep = updateAfterStep;
    if (warmup) {
      const { invGamma = 1, power = 2 / 3 } = warmup === true ? {} : warmup;
      if (!(invGamma > 0) || !(power > 0))
        throw new Error(`EMA: warmup needs invGamma > 0 and power > 0, got ${invGamma}, ${power}`);
      this.warmup = { invGamma, power };
    } else {
      this.warmup = null;
    }
    const seen = new Set<Tensor>();
    named.forEach(([name, p]) => {
      if (p.isDisposed) throw new Error(`EMA: parameter '${name}' was disposed`);
      if (p.dtype !== 'float32') throw new Error(`EMA: parameter '${name}' is ${p.dtype}, expected float32`);
      if (seen.has(p)) throw new Error(`EMA: parameter '${name}' appears more than once`);
      seen.add(p);
    });
    this.names = named.map(([n]) => n);
    this.params = named.map(([, p]) => p);
    this.shadows = this.params.map((p) => keep(cloneTensor('EMA', p)));
  }

  /** The decay the next `update()` will use. */
  get currentDecay(): number {
    return this.decayAt(this.step + 1);
  }

  private decayAt(update: number): number {
    const t = update - this.updateAfterStep;
    if (t <= 0) return 0;
    if (!this.warmup) return this.decay;
    const ramp = 1 - (1 + t / this.warmup.invGamma) ** -this.warmup.power;
    return Math.min(this.decay, Math.max(this.minDecay, ramp));
  }

  /** Folds the current parameter values into the shadows (call after each optimizer step). */
  update(): void {
    this.checkLive();
    const weight = 1 - this.decayAt(++this.step);
    // As many tensors per dispatch as the stage binds (a parameter and its shadow each).
    const live = this.params.flatMap((p, i) => (p.size > 0 ? [i] : []));
    for (const { vec4, items } of splitByVec4(live, (i) => [this.params[i]!, this.shadows[i]!])) {
      for (const part of chunks(items, tensorsPerDispatch(2))) {
        const params = part.map((i) => this.params[i]!);
        const { n, first, groups } = multiLayout(params, optimGroups, vec4);
        launch(
          emaKernel(part.length, vec4),
          params,
          part.map((i) => this.shadows[i]!),
          { weight, n, first },
          gridGroups(groups),
        );
      }
    }
  }

  /**
   * Copies the averaged weights into `target`: a module (matched by parameter name), a list of tensors
   * (matched by position), or by default the tensors the EMA tracks. Values are copied; no storage is shared.
   */
  copyTo(target?: Module | readonly Tensor[]): void {
    this.checkLive();
    this.resolve('EMA.copyTo', target).forEach((t, i) => copyInto('EMA.copyTo', t, this.shadows[i]!));
  }

  /** Saves a copy of the current values of `target` (default: the tracked tensors) for `restore()`. */
  store(target?: Module | readonly Tensor[]): void {
    const tensors = this.resolve('EMA.store', target);
    if (this.backup) dispose(this.backup);
    this.backup = tensors.map((t) => keep(cloneTensor('EMA.store', t)));
  }

  /** Writes the values saved by `store()` back into `target` (default: the tracked tensors) and drops them. */
  restore(target?: Module | readonly Tensor[]): void {
    if (!this.backup) throw new Error('EMA.restore: nothing stored; call store() first');
    const tensors = this.resolve('EMA.restore', target);
    tensors.forEach((t, i) => copyInto('EMA.restore', t, this.backup![i]!));
    dispose(this.backup);
    this.backup = null;
  }

  /** The shadows by parameter name (the EMA's own tensors) and the hyper-parameters and step count. */
  stateDict(): EMAStateDict {
    return {
      tensors: new Map(this.names.map((n, i) => [n, this.shadows[i]!])),
      meta: {
        type: 'EMA',
        decay: this.decay,
        minDecay: this.minDecay,
        updateAfterStep: this.updateAfterStep,
        warmup: this.warmup && { ...this.warmup },
        step: this.step,
      },
    };
  }

  /**
   * Restores the shadows (copied into the EMA's own buffers) and the step count. Names and shapes must
   * match; hyper-parameters come from the constructor and must agree with the saved ones.
   */
  loadStateDict(dict: EMAStateDict): void {
    const where = 'EMA.loadStateDict';
    const { meta, tensors } = dict;
    if (typeof meta !== 'object' || meta === null)
      throw new Error(`${where}: malformed EMA state: expected an object, got ${JSON.stringify(meta)}`);
    if (meta.type !== 'EMA') throw new Error(`${where}: state is for ${String(meta.type)}, not EMA`);
    const mine = {
      decay: this.decay,
      minDecay: this.minDecay,
      updateAfterStep: this.updateAfterStep,
      warmup: this.warmup,
    };
    const theirs = {
      decay: meta.decay,
      minDecay: meta.minDecay,
      updateAfterStep: meta.updateAfterStep,
      warmup: meta.warmup,
    };
    if (JSON.stringify(mine) !== JSON.stringify(theirs)) {
      throw new Error(
        `${where}: saved hyper-parameters ${JSON.stringify(theirs)} differ from this EMA's ${JSON.stringify(mine)}`,
      );
    }
    if (!Number.isInteger(meta.step) || meta.step < 0) throw new Error(`${where}: bad step count ${meta.step}`);
    const problems: string[] = [];
    this.names.forEach((n, i) => {
      const t = tensors.get(n);
      if (!t) problems.push(`missing: ${n}`);
      else if (t.shape.join() !== this.shadows[i]!.shape.join()) {
        problems.push(
          `shape mismatch for ${n}: expected ${formatShape(this.shadows[i]!.shape)}, got ${formatShape(t.shape)}`,
        );
      }
    });
    for (const n of tensors.keys()) if (!this.names.includes(n)) problems.push(`unexpected: ${n}`);
    if (problems.length > 0) throw new Error(`${where}: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`);
    this.names.forEach((n, i) => copyInto(where, this.shadows[i]!, tensors.get(n)!));
    this.step = meta.step;
  }

  /** Frees the shadows and any stored backup. */
  dispose(): void {
    dispose(this.shadows);
    if (this.backup) dispose(this.backup);
    this.backup = null;
  }

  private checkLive(): void {
    this.params.forEach((p, i) => {
      if (p.isDisposed) throw new Error(`EMA: parameter '${this.names[i]}' was disposed`);
    });
  }

  /** The tensors of `target` in the EMA's order, checked against the shadows' names and shapes. */
  private resolve(where: string, target: Module | readonly Tensor[] | undefined): Tensor[] {
    if (target === undefined) return this.params;
    let tensors: Tensor[];
    if (target instanceof Module) {
      const own = new Map(target.namedParameters());
      const missing = this.names.filter((n) => !own.has(n));
      if (missing.length > 0) throw new Error(`${where}: the module has no parameter(s) ${missing.join(', ')}`);
      tensors = this.names.map((n) => own.get(n)!);
    } else {
      if (!Array.isArray(target) || target.length !== this.names.length) {
        throw new Error(
          `${where}: expected a Module or ${this.names.length} tensors, got ${Array.isArray(target) ? `${target.length} tensors` : kindOf(target)}`,
        );
      }
      tensors = [...target];
    }
    tensors.forEach((t, i) => {
      if (!(t instanceof Tensor) || t.isDisposed || t.shape.join() !== this.shadows[i]!.shape.join()) {
        throw new Error(
          `${where}: '${this.names[i]}' should be a live tensor of shape ${formatShape(this.shadows[i]!.shape)}, got ${kindOf(t)}`,
        );
      }
    });
    return tensors;
  }
}

function namedTensors(
  where: string,
  source: Module | ReadonlyMap<string, Tensor> | readonly Tensor[],
): [string, Tensor][] {
  if (source instanceof Module) return [...source.namedParameters()];
  const named: [string, Tensor][] | null =
    source instanceof Map ? [...source] : Array.isArray(source) ? source.map((p, i) => [String(i), p]) : null;
  if (!named)
    throw new Error(
      `${where}: expected a Module, a map of named tensors or an array of tensors, got ${kindOf(source)}`,
    );
  named.forEach(([name, p]) => {
    if (!(p instanceof Tensor)) throw new Error(`${where}: parameter '${name}' is not a Tensor (got ${kindOf(p)})`);
  });
  return named;
}
