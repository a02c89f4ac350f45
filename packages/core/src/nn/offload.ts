/**
 * Host offload of a module's weights (diffusers' model CPU offload): `offloadToHost` moves every parameter and
 * buffer into host memory (the tensor's storage becomes a `HostStorage`, its device buffer goes back to the
 * pool); `reloadFromHost` uploads the same bytes again. The module keeps its tensor objects throughout (layers
 * hold them by reference); while in host memory they refuse device use. The host copy is kept after a reload,
 * so offloading an unchanged module again frees its buffers without reading them back.
 *
 * A module can also start in host memory: offloaded before its weights exist (built with `nn.withoutInit`),
 * its parameters are in host memory with undefined values, and `Module.loadStateDict` with host tensors (the
 * loaders' `host` option) fills them there, so those weights reach the device only when the module is reloaded.
 */
import { sizeClass } from '../device/buffer-pool.js';
import { deviceTensorOf, hostTensor, hostValuesOf } from '../forward/host.js';
import type { HostValues } from '../tensor/host-storage.js';
import type { Storage } from '../tensor/storage.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from './module.js';

interface HostCopy {
  values: HostValues;
  /** The storage the last reload uploaded (still the tensor's: nothing wrote to it since, no read needed). */
  uploaded: Storage;
}

/** Host copies of reloaded tensors, kept until the next offload or `dropHostCopy`. */
const copies = new WeakMap<Tensor, HostCopy>();

const REMEDY = 'call nn.reloadFromHost on its module before using it';

/** The module's parameters and buffers, each tensor once, with its name. */
function tensorsOf(module: Module): [string, Tensor][] {
  const seen = new Map<Tensor, string>();
  for (const [name, t] of [...module.namedParameters(), ...module.namedBuffers()]) if (!seen.has(t)) seen.set(t, name);
  return [...seen].map(([t, name]) => [name, t]);
}

async function read(t: Tensor): Promise<HostValues> {
  if (t.dtype === 'float16') return t.halfBits();
  return t.dtype === 'int32' ? t.intData() : t.data();
}

/**
 * Bytes the modules' parameters and buffers take on the device (each tensor once, in the buffer pool's size
 * classes), whether they are there now, in host memory or not yet allocated.
 */
export function deviceBytes(modules: Module[]): number {
  const tensors = new Set(modules.flatMap((m) => tensorsOf(m).map(([, t]) => t)));
  return [...tensors].reduce((n, t) => n + sizeClass(t.byteLength), 0);
}

/** Whether `module` is offloaded: it has parameters or buffers and all of them are in host memory. */
export function isOffloaded(module: Module): boolean {
  const all = tensorsOf(module);
  return all.length > 0 && all.every(([, t]) => t.isOnHost);
}

/**
 * Moves `module`'s parameters and buffers to host memory and frees their device buffers (back to the pool).
 * Waits for the device to finish the work queued before (the values are read back) unless the module was
 * reloaded and left unchanged since. Tensors that were never allocated (`nn.withoutInit`) go to host memory
 * with undefined values (a load fills them there). Tensors already in host memory stay as they are.
 */
export async function offloadToHost(module: Module): Promise<void> {
  const entries = tensorsOf(module).filter(([, t]) => !t.isOnHost);
  // Read everything first (one wait for the queue), then free.
  const values: (HostValues | null)[] = [];
  for (const [, t] of entries) {
    const copy = copies.get(t);
    values.push(!t.storage.allocated ? null : copy?.uploaded === t.storage ? copy.values : await read(t));
  }
  const prefix = module.constructor.name;
  entries.forEach(([name, t], i) => {
    const placeholder = hostTensor(values[i]!, t.shape, t.dtype, `${prefix}.${name}`, REMEDY);
    t.setData(placeholder);
    placeholder.dispose();
    copies.delete(t);
  });
}

/**
 * Uploads the values of a module's tensors that are in host memory, bit for bit (no-op for those on the
 * device); tensors with undefined values get a device storage that takes a buffer on first use.
 */
export function reloadFromHost(module: Module): void {
  for (const [, t] of tensorsOf(module)) {
    if (!t.isOnHost) continue;
    const values = hostValuesOf(t);
    const fresh = deviceTensorOf(values, t.shape, t.dtype);
    t.setData(fresh);
    fresh.dispose();
    if (values) copies.set(t, { values, uploaded: t.storage });
  }
}

/** Drops the host copies of a module's tensors that are on the device (their memory returns to the JS heap). */
export function dropHostCopy(module: Module): void {
  for (const [, t] of tensorsOf(module)) copies.delete(t);
}
