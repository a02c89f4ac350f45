import { formatShape } from '../tensor/shape.js';
import { keep } from '../tensor/scope.js';
import { BYTES_PER_ELEMENT, Tensor, isFloatDType } from '../tensor/tensor.js';
import { Storage } from '../tensor/storage.js';
import { cast } from '../ops/cast.js';
import { noGrad } from '../autograd/grad-mode.js';
import { activeDevice } from '../device/device.js';
import { requireHalf } from '../forward/launch.js';
import { convertHostValues, hostTensor, hostValuesOf, uploadHostTensor } from '../forward/host.js';
import type { HostStorage, HostValues } from '../tensor/host-storage.js';

export interface LoadReport {
  missing: string[];
  unexpected: string[];
  /** Keys present on both sides with different shapes. */
  mismatched: { key: string; expected: number[]; got: number[] }[];
}

/** Class and property names already warned about by `Module.findUnregistered` (one warning each). */
const warnedUnregistered = new Set<string>();

export interface LoadOptions {
  /** Throw when any key is missing, unexpected or of the wrong shape (default true). */
  strict?: boolean;
  /** Keys that may be absent or extra without failing a strict load (e.g. unused attn2 weights). */
  ignore?: (key: string) => boolean;
}

/**
 * Base class of layers and models, PyTorch-style: parameters, buffers and submodules registered under
 * names, addressed by dotted paths (`down_blocks.0.resnets.1.conv1.weight`) in state dicts, so that
 * official checkpoints load without renaming.
 *
 * Registration is explicit because JavaScript cannot observe field assignment:
 *   this.weight = this.addParameter('weight', T.zeros([out, in]));
 *   this.conv = this.addModule('conv', new Conv2d(...));
 */
export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor | null>();
  private readonly buffers = new Map<string, { tensor: Tensor | null; persistent: boolean }>();
  private readonly modules = new Map<string, Module>();

  /** Registers a trainable tensor (it gets requiresGrad and survives tidy scopes). */
  protected addParameter(name: string, t: Tensor): Tensor;
  protected addParameter(name: string, t: Tensor | null): Tensor | null;
  protected addParameter(name: string, t: Tensor | null): Tensor | null {
    this.checkName(name);
    if (t) {
      t.requiresGrad = true;
      keep(t);
    }
    this.params.set(name, t);
    return t;
  }

  /** Registers state that is not trained (running statistics); non-persistent buffers stay out of state dicts. */
  protected addBuffer(name: string, t: Tensor, persistent?: boolean): Tensor;
  protected addBuffer(name: string, t: Tensor | null, persistent?: boolean): Tensor | null;
  protected addBuffer(name: string, t: Tensor | null, persistent = true): Tensor | null {
    this.checkName(name);
    if (t) keep(t);
    this.buffers.set(name, { tensor: t, persistent });
    return t;
  }

  protected addModule<M extends Module>(name: string, m: M): M {
    this.checkName(name);
    this.modules.set(name, m);
    return m;
  }

  private checkName(name: string): void {
    if (!name || name.includes('.')) throw new Error(`${this.constructor.name}: invalid member name '${name}'`);
    if (this.params.has(name) || this.buffers.has(name) || this.modules.has(name)) {
      throw new Error(`${this.constructor.name}: '${name}' is registered twice`);
    }
  }

  *namedChildren(): Generator<[string, Module]> {
    yield* this.modules.entries();
  }

  /** This module and every descendant, depth first, with dotted names ('' for this one). */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, m] of this.modules) yield* m.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  /**
   * Own properties of this module and its descendants that hold a Tensor or a Module that was never
   * registered (`this.w = tensor` instead of `this.w = this.addParameter('w', tensor)`): such a tensor is
   * not trained, saved or loaded, and such a module's parameters are missed. Tensors registered anywhere in
   * the tree (tied weights) do not count. Returned as dotted property paths.
   */
  findUnregistered(): string[] {
    const registered = new Set<unknown>();
    const modules = [...this.namedModules()];
    for (const [, m] of modules) {
      for (const t of m.params.values()) registered.add(t);
      for (const b of m.buffers.values()) registered.add(b.tensor);
      for (const c of m.modules.values()) registered.add(c);
    }
    const found: string[] = [];
    for (const [path, m] of modules) {
      for (const [key, value] of Object.entries(m)) {
        const live = value instanceof Module || (value instanceof Tensor && !value.isDisposed);
        if (live && !registered.has(value)) {
          found.push(path ? `${path}.${key}` : key);
        }
      }
    }
    return found;
  }

  /** Warns once per class and property about unregistered tensors and modules (see findUnregistered). */
  private warnUnregistered(): void {
    for (const path of this.findUnregistered()) {
      const key = `${this.constructor.name}:${path}`;
      if (warnedUnregistered.has(key)) continue;
      warnedUnregistered.add(key);
      console.warn(
        `${this.constructor.name}: property '${path}' holds a tensor or module that is not registered, so it is not a parameter ` +
          `(not trained, saved or loaded); register it with addParameter / addBuffer(name, t, false) / addModule`,
      );
    }
  }

  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    this.warnUnregistered();
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, t] of m.params) if (t) yield [path ? `${path}.${name}` : name, t];
    }
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, t]) => t);
  }

  *namedBuffers(prefix = '', onlyPersistent = false): Generator<[string, Tensor]> {
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, b] of m.buffers) {
        if (b.tensor && (!onlyPersistent || b.persistent)) yield [path ? `${path}.${name}` : name, b.tensor];
      }
    }
  }

  /** Total number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /** Sets training mode here and below (dropout, batch-norm statistics). */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Parameters and persistent buffers by dotted name (tensors are shared, not copied). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers('', true)]);
  }

  /**
   * Copies tensors into parameters and buffers by name (the module's tensors take the given storage; a tensor of the
   * other float dtype is converted to the module's).
   * Reports missing, unexpected and wrong-shaped keys; a strict load throws listing all of them.
   *
   * Where things live: a parameter in host memory (its module offloaded with `nn.offloadToHost`, e.g. before
   * any weights were loaded) takes the values of a host tensor (the loaders' `host` option) and stays in host
   * memory, never allocated on the device (converted on the host where the dtypes differ); a device value for it
   * is an error. A parameter on the device takes a host value through an upload of its own.
   */
  loadStateDict(dict: Map<string, Tensor> | Record<string, Tensor>, options: LoadOptions = {}): LoadReport {
    const given = dict instanceof Map ? dict : new Map(Object.entries(dict));
    const own = this.stateDict();
    const report = this.checkStateDict(new Map([...given].map(([k, v]) => [k, v.shape])), options);
    const failed = report.missing.length + report.unexpected.length + report.mismatched.length > 0;
    if (failed && (options.strict ?? true)) {
      const lines = [
        ...report.mismatched.map(
          (m) => `  shape mismatch for ${m.key}: expected ${formatShape(m.expected)}, got ${formatShape(m.got)}`,
        ),
        ...report.missing.map((k) => `  missing: ${k}`),
        ...report.unexpected.map((k) => `  unexpected: ${k}`),
      ];
      throw new Error(`loadStateDict(${this.constructor.name}): ${lines.length} problem(s)\n${lines.join('\n')}`);
    }
    const bad = new Set(report.mismatched.map((m) => m.key));
    const pairs = [...own].flatMap(([key, t]) => {
      const v = given.get(key);
      return v && !bad.has(key) ? [[key, t, v] as const] : [];
    });
    // Checked before anything changes, so a refused load leaves the module as it was.
    for (const [key, t, v] of pairs) {
      if (t.isOnHost && !v.isOnHost)
        throw new Error(
          `loadStateDict(${this.constructor.name}): '${key}' is in host memory (its module is offloaded) but the value given is on the device; ` +
            `read the weights with the loaders' host option, or call nn.reloadFromHost on the module first`,
        );
      if (t.isOnHost && v.dtype !== t.dtype && !(isFloatDType(v.dtype) && isFloatDType(t.dtype)))
        throw new Error(
          `loadStateDict(${this.constructor.name}): '${key}' is ${t.dtype}, the value given is ${v.dtype}`,
        );
    }
    for (const [, t, v] of pairs) {
      if (t.isOnHost) {
        loadOnHost(t, v);
        continue;
      }
      const value = v.isOnHost ? uploadHostTensor(v) : v;
      // Values of another float dtype are converted to the module's (as PyTorch's load_state_dict copies).
      if (value.dtype !== t.dtype && isFloatDType(value.dtype) && isFloatDType(t.dtype)) {
        const converted = noGrad(() => cast(value, t.dtype));
        t.assign(converted);
        converted.dispose();
      } else t.assign(value);
      if (value !== v) value.dispose();
    }
    return report;
  }

  /**
   * Compares a state dict's keys and shapes with this module's without loading anything (what
   * loadStateDict checks first): missing, unexpected and wrong-shaped keys.
   */
  checkStateDict(shapes: Map<string, readonly number[]>, options: LoadOptions = {}): LoadReport {
    const own = this.stateDict();
    const ignore = options.ignore ?? (() => false);
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [] };
    for (const [key, t] of own) {
      const shape = shapes.get(key);
      if (!shape) {
        if (!ignore(key)) report.missing.push(key);
        continue;
      }
      if (shape.join() !== t.shape.join()) report.mismatched.push({ key, expected: [...t.shape], got: [...shape] });
    }
    for (const key of shapes.keys()) if (!own.has(key) && !ignore(key)) report.unexpected.push(key);
    return report;
  }

  /**
   * Converts every float parameter and buffer to `dtype` in place (PyTorch's `module.to(dtype)`; int32 buffers
   * stay). Parameters whose storage was never allocated (`nn.withoutInit`) stay unallocated, so a model built
   * to receive float16 weights costs nothing before loading; those in host memory (offloaded) are converted
   * there (rounded as on the device).
   */
  to(dtype: 'float32' | 'float16'): this {
    if (dtype === 'float16') requireHalf(activeDevice(), `${this.constructor.name}.half`);
    const seen = new Set<Tensor>();
    for (const t of [...this.parameters(), ...[...this.namedBuffers()].map(([, b]) => b)]) {
      if (seen.has(t) || !isFloatDType(t.dtype) || t.dtype === dtype) continue;
      seen.add(t);
      // In host memory (offloaded): converted there, staying off the device.
      const next = t.isOnHost
        ? hostTensorLike(t, convertHostValues(hostValuesOf(t), t.dtype, dtype), dtype)
        : t.storage.allocated
          ? noGrad(() => cast(t, dtype))
          : new Tensor(new Storage(t.device, null, t.size * BYTES_PER_ELEMENT[dtype]), t.shape, dtype);
      t.setData(next);
      next.dispose();
    }
    return this;
  }

  /** `to('float16')`: float16 weights and buffers (needs the adapter's shader-f16). */
  half(): this {
    return this.to('float16');
  }

  /** `to('float32')`. */
  float(): this {
    return this.to('float32');
  }

  /** Drops the gradients of every parameter. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const t of [...this.parameters(), ...[...this.namedBuffers()].map(([, b]) => b)]) t.dispose();
  }
}

/** A tensor in host memory standing for `t` (a host tensor itself), with other values and dtype, same name and advice. */
function hostTensorLike(t: Tensor, values: HostValues | null, dtype = t.dtype): Tensor {
  const s = t.storage as HostStorage;
  return hostTensor(values, t.shape, dtype, s.what, s.remedy);
}

/** A parameter in host memory takes a host value's values (no copy; converted on the host to its float dtype). */
function loadOnHost(t: Tensor, v: Tensor): void {
  const next = hostTensorLike(t, convertHostValues(hostValuesOf(v), v.dtype, t.dtype));
  t.setData(next);
  next.dispose();
}
