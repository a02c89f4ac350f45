import { keep } from '../tensor/scope.js';
import { formatShape } from '../tensor/shape.js';
import type { Storage } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';
import { cloneTensor } from './copy.js';

/** Hyper-parameters every optimizer has; `lr` and `weightDecay` may differ per parameter group. */
export interface BaseHyper {
  lr: number;
  weightDecay: number;
}

/** A parameter group as given to a constructor: its tensors plus any hyper-parameters that override the defaults. */
export type ParamGroupSpec<H> = { params: readonly Tensor[] } & Partial<H>;

/** What optimizers accept: a list of tensors (one group), or a list of groups. */
export type ParamsInput<H> = readonly Tensor[] | readonly ParamGroupSpec<H>[];

/**
 * A live parameter group: tensors, current hyper-parameters (assign `lr` freely between steps) and
 * `lrScale`, the group's initial lr relative to the optimizer's, which `optimizer.lr = x` preserves.
 */
export type ParamGroup<H> = H & { params: Tensor[]; lrScale: number };

type JsonValue = number | boolean | string | null | JsonValue[] | { [key: string]: JsonValue };

/** JSON-able description of an optimizer's state: hyper-parameters per group and step counts. */
export interface OptimizerMeta {
  type: string;
  groups: ({ params: number[]; lrScale: number } & Record<string, JsonValue>)[];
  /** Steps taken, by parameter index (parameters that never had a gradient are absent). */
  steps: Record<string, number>;
}

/**
 * An optimizer's state dict. Tensors are named `state.<parameter index>.<buffer>` with PyTorch's buffer
 * names (`momentum_buffer`, `exp_avg`, ...); indices count parameters over all groups in order. The tensors
 * are the optimizer's own (not copies): read them, do not dispose them.
 */
export interface OptimizerStateDict {
  tensors: Map<string, Tensor>;
  meta: OptimizerMeta;
}

export interface ParamState {
  /** Steps this parameter has taken (parameters without a gradient are skipped and do not count). */
  step: number;
  buffers: Record<string, Tensor>;
}

export const kindOf = (v: unknown) =>
  v instanceof Tensor ? v.toString() : v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;

/**
 * Base of the fused optimizers. Subclasses give the defaults, validate hyper-parameters and launch one
 * kernel per parameter that updates the parameter buffer and its state in place.
 *
 * Parameters must be distinct float32 leaf tensors with their own storage: updates are in place, so two
 * parameters sharing a buffer would be updated twice.
 */
export abstract class Optimizer<H extends BaseHyper> {
  readonly paramGroups: ParamGroup<H>[];
  /** Every parameter, over all groups in order (the indices used by state dicts). */
  protected readonly params: Tensor[] = [];
  private readonly states = new Map<Tensor, ParamState>();
  private readonly baseLr: number;
  private readonly grouped: boolean;

  protected constructor(
    /** The optimizer's name in errors and state dicts. */
    readonly name: string,
    params: ParamsInput<H>,
    protected readonly defaults: H,
    /** Every state buffer a parameter may have, by its PyTorch name. */
    private readonly stateNames: readonly string[],
  ) {
    this.checkHyper(defaults, name);
    this.baseLr = defaults.lr;
    if (!Array.isArray(params)) {
      throw new Error(`${name}: expected an array of tensors or of parameter groups, got ${kindOf(params)}`);
    }
    if (params.length === 0) throw new Error(`${name}: got an empty parameter list`);
    const specs: ParamGroupSpec<H>[] =
      params[0] instanceof Tensor
        ? [{ params: params as readonly Tensor[] } as ParamGroupSpec<H>]
        : [...(params as ParamGroupSpec<H>[])];
    this.grouped = !(params[0] instanceof Tensor);
    const seen = new Set<Tensor>();
    this.paramGroups = specs.map((spec, gi) => {
      const where = this.groupName(gi);
      if (spec instanceof Tensor || !spec || typeof spec !== 'object' || !Array.isArray(spec.params)) {
        throw new Error(
          `${name}: parameter groups must be objects { params: Tensor[], ...options }; entry ${gi} is ${kindOf(spec)} ` +
            '(pass either tensors or groups, not a mix)',
        );
      }
      for (const key of Object.keys(spec)) {
        if (key !== 'params' && !(key in defaults)) {
          throw new Error(`${where}: unknown option '${key}' (expected one of ${Object.keys(defaults).join(', ')})`);
        }
      }
      if (spec.params.length === 0) throw new Error(`${where}: has no parameters`);
      for (const p of spec.params) {
        const i = this.params.length;
        if (!(p instanceof Tensor)) throw new Error(`${name}: parameter ${i} is not a Tensor (got ${kindOf(p)})`);
        if (p.isDisposed) throw new Error(`${name}: parameter ${i} (shape ${formatShape(p.shape)}) was disposed`);
        if (p.dtype === 'float16') {
          // No hidden master copy: the update would round to half precision every step.
          throw new Error(
            `${name}: parameter ${i} is float16; optimizers update float32 parameters only: train the float32 model (float32 master weights) and call half() on a copy for inference`,
          );
        }
        if (p.dtype !== 'float32')
          throw new Error(`${name}: parameter ${i} is ${p.dtype}; only float32 tensors can be optimized`);
        if (!p.isLeaf)
          throw new Error(
            `${name}: parameter ${i} (shape ${formatShape(p.shape)}) is not a leaf tensor; optimize the tensors the graph starts from`,
          );
        if (seen.has(p))
          throw new Error(`${name}: parameter ${i} (shape ${formatShape(p.shape)}) appears more than once`);
        seen.add(p);
        this.params.push(p);
      }
      const { params: groupParams, ...overrides } = spec;
      // Arrays (betas) are copied so that groups never share a mutable value.
      const hyper = Object.fromEntries(
        Object.entries({ ...defaults, ...overrides }).map(([k, v]) => [k, Array.isArray(v) ? [...v] : v]),
      ) as unknown as H;
      this.checkHyper(hyper, where);
      const lrScale = hyper.lr === defaults.lr ? 1 : defaults.lr > 0 ? hyper.lr / defaults.lr : NaN;
      return { ...hyper, params: [...groupParams], lrScale };
    });
    this.checkStorage();
  }

  /** Throws a message naming `where` for any invalid hyper-parameter. */
  protected abstract checkHyper(h: H, where: string): void;

  /** Records the in-place update of one parameter from its gradient; `state.step` already counts this step. */
  protected abstract update(param: Tensor, grad: Tensor, group: ParamGroup<H>, state: ParamState): void;

  /** Records what `update` collected rather than launched at once (several parameters per dispatch). */
  protected flush(): void {}

  /** The first group's learning rate. */
  get lr(): number {
    return this.paramGroups[0]!.lr;
  }

  /**
   * Sets every group's learning rate to `value` times the group's `lrScale` (its initial lr relative to the
   * optimizer's), so per-group multipliers survive a schedule. Passed to kernels as a uniform: no recompiles.
   */
  set lr(value: number) {
    checkLr(this.name, value);
    for (const [gi, g] of this.paramGroups.entries()) {
      if (Number.isNaN(g.lrScale)) {
        throw new Error(
          `${this.name}.lr: group ${gi} has its own lr but the optimizer's lr was ${this.baseLr}, so its ratio is undefined; ` +
            `set paramGroups[${gi}].lr directly`,
        );
      }
      g.lr = value * g.lrScale;
    }
  }

  /**
   * Applies one update to every parameter that has a gradient (others are skipped, as in PyTorch).
   * Everything is validated before the first update, so a bad gradient never leaves a half-applied step.
   */
  step(): void {
    this.checkStorage();
    const work: { p: Tensor; g: Tensor; group: ParamGroup<H> }[] = [];
    let index = 0;
    for (const [gi, group] of this.paramGroups.entries()) {
      this.checkHyper(group, this.groupName(gi));
      for (const p of group.params) {
        const i = index++;
        const g = p.grad;
        if (!g) continue;
        const where = `${this.name}.step: gradient of parameter ${i}`;
        if (!(g instanceof Tensor) || g.isDisposed)
          throw new Error(`${where} is ${g instanceof Tensor ? 'disposed' : kindOf(g)}`);
        if (g.dtype !== 'float32') throw new Error(`${where} is ${g.dtype}, expected float32`);
        if (g.shape.join() !== p.shape.join()) {
          throw new Error(`${where} has shape ${formatShape(g.shape)}, parameter is ${formatShape(p.shape)}`);
        }
        if (g.storage === p.storage) throw new Error(`${where} shares the parameter's buffer`);
        work.push({ p, g, group });
      }
    }
    for (const { p, g, group } of work) {
      let state = this.states.get(p);
      if (!state) this.states.set(p, (state = { step: 0, buffers: {} }));
      state.step++;
      this.update(p, g, group, state);
    }
    this.flush();
  }

  /** How errors name a group: by index when the optimizer was given groups. */
  private groupName(gi: number): string {
    return this.grouped ? `${this.name} group ${gi}` : this.name;
  }

  /** Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Keeps a new state buffer out of tidy scopes and records it. */
  protected addState(state: ParamState, name: string, t: Tensor): Tensor {
    state.buffers[name] = keep(t);
    return t;
  }

  stateDict(): OptimizerStateDict {
    const tensors = new Map<string, Tensor>();
    const steps: Record<string, number> = {};
    this.params.forEach((p, i) => {
      const s = this.states.get(p);
      if (!s) return;
      steps[i] = s.step;
      for (const [k, t] of Object.entries(s.buffers)) tensors.set(`state.${i}.${k}`, t);
    });
    let index = 0;
    const groups = this.paramGroups.map(({ params, ...hyper }) => ({
      ...(hyper as unknown as Record<string, JsonValue>),
      lrScale: hyper.lrScale,
      params: params.map(() => index++),
    }));
    return { tensors, meta: { type: this.name, groups, steps } };
  }

  /**
   * Restores hyper-parameters, step counts and state buffers. Values are copied into buffers the optimizer
   * owns, so the given tensors stay the caller's. The parameter layout (groups, shapes) must match.
   */
  loadStateDict(dict: OptimizerStateDict): void {
    const { meta, tensors } = dict;
    const where = `${this.name}.loadStateDict`;
    checkOptimizerMeta(meta, where);
    if (meta.type !== this.name) throw new Error(`${where}: state is for ${meta.type}, not ${this.name}`);
    if (meta.groups.length !== this.paramGroups.length) {
      throw new Error(
        `${where}: state has ${meta.groups.length} parameter groups, optimizer has ${this.paramGroups.length}`,
      );
    }
    let index = 0;
    meta.groups.forEach((g, gi) => {
      const own = this.paramGroups[gi]!;
      const expected = own.params.map(() => index++);
      if (g.params.join() !== expected.join()) {
        throw new Error(
          `${where}: group ${gi} holds parameters [${g.params.join(', ')}] in the state, [${expected.join(', ')}] here`,
        );
      }
    });
    // Validate every tensor before changing anything.
    const incoming = new Map<number, ParamState>();
    for (const [key, step] of Object.entries(meta.steps)) {
      const i = Number(key);
      if (!Number.isInteger(i) || i < 0 || i >= this.params.length || !Number.isInteger(step) || step < 0) {
        throw new Error(`${where}: bad step entry ${key}: ${step} (optimizer has ${this.params.length} parameters)`);
      }
      incoming.set(i, { step, buffers: {} });
    }
    for (const [key, t] of tensors) {
      const m = /^state\.(\d+)\.(\w+)$/.exec(key);
      const i = m ? Number(m[1]) : -1;
      const s = incoming.get(i);
      if (!m || !s || !this.stateNames.includes(m[2]!)) {
        throw new Error(
          `${where}: unexpected state tensor '${key}' (expected state.<index>.<${this.stateNames.join('|')}> for a parameter with a step count)`,
        );
      }
      const p = this.params[i]!;
      if (!(t instanceof Tensor) || t.isDisposed) throw new Error(`${where}: '${key}' is not a live tensor`);
      if (t.shape.join() !== p.shape.join() || t.dtype !== 'float32') {
        throw new Error(
          `${where}: '${key}' is ${formatShape(t.shape)} ${t.dtype}, parameter ${i} is ${formatShape(p.shape)} float32`,
        );
      }
      s.buffers[m[2]!] = t;
    }
    const nextGroups = meta.groups.map(({ params: _params, lrScale, ...hyper }, gi) => {
      const unknown = Object.keys(hyper).filter((k) => !(k in this.defaults));
      if (unknown.length > 0) throw new Error(`${where}: group ${gi} has unknown option(s) ${unknown.join(', ')}`);
      const own = this.paramGroups[gi]!;
      const next = { ...own, ...(hyper as unknown as Partial<H>), lrScale: lrScale ?? own.lrScale };
      this.checkHyper(next, `${where} group ${gi}`);
      return next;
    });
    nextGroups.forEach((next, gi) => Object.assign(this.paramGroups[gi]!, next));
    for (const s of this.states.values()) for (const t of Object.values(s.buffers)) t.dispose();
    this.states.clear();
    for (const [i, s] of incoming) {
      const state: ParamState = { step: s.step, buffers: {} };
      for (const [name, t] of Object.entries(s.buffers)) this.addState(state, name, cloneTensor(where, t));
      this.states.set(this.params[i]!, state);
    }
  }

  /** Frees the optimizer's state buffers (parameters are the caller's). */
  dispose(): void {
    for (const s of this.states.values()) for (const t of Object.values(s.buffers)) t.dispose();
    this.states.clear();
  }

  /** Parameters are updated in place, so no two may share a buffer (a tied weight must be passed once). */
  private checkStorage(): void {
    const owners = new Map<Storage, number>();
    this.params.forEach((p, i) => {
      if (p.isDisposed) throw new Error(`${this.name}: parameter ${i} (shape ${formatShape(p.shape)}) was disposed`);
      const other = owners.get(p.storage);
      if (other !== undefined) {
        throw new Error(
          `${this.name}: parameters ${other} and ${i} share one buffer; in-place updates would apply twice (pass a tied weight once)`,
        );
      }
      owners.set(p.storage, i);
    });
  }
}

/** The saved metadata's structure (a damaged or foreign file gives a message, not a TypeError). */
function checkOptimizerMeta(meta: unknown, where: string): void {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  const bad = (what: string) => new Error(`${where}: malformed optimizer state: ${what}`);
  if (!isObject(meta)) throw bad(`expected an object {type, groups, steps}, got ${JSON.stringify(meta)}`);
  if (typeof meta.type !== 'string') throw bad(`type is ${JSON.stringify(meta.type)}, expected a string`);
  if (!Array.isArray(meta.groups)) throw bad(`groups is ${JSON.stringify(meta.groups)}, expected a list`);
  meta.groups.forEach((g, gi) => {
    if (!isObject(g) || !Array.isArray(g.params) || g.params.some((i) => !Number.isInteger(i))) {
      throw bad(`group ${gi} is ${JSON.stringify(g)}, expected an object with a params list of indices`);
    }
  });
  if (!isObject(meta.steps)) throw bad(`steps is ${JSON.stringify(meta.steps)}, expected an object of step counts`);
}

/** Learning rates must be finite and >= 0. */
export function checkLr(where: string, lr: unknown): void {
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) {
    throw new Error(`${where}: invalid learning rate ${String(lr)} (must be a finite number >= 0)`);
  }
}

/** A hyper-parameter that must be a finite number in [lo, hi) or [lo, hi]. */
export function checkRange(
  where: string,
  name: string,
  v: unknown,
  lo: number,
  hi: number,
  hiInclusive: boolean,
): void {
  const ok = typeof v === 'number' && Number.isFinite(v) && v >= lo && (hiInclusive ? v <= hi : v < hi);
  if (!ok)
    throw new Error(`${where}: invalid ${name} ${String(v)} (must be in [${lo}, ${hi}${hiInclusive ? ']' : ')'})`);
}
