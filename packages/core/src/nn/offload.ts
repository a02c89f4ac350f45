/**
 * Host offload of a module's weights (diffusers' model CPU offload): `offloadToHost` copies every parameter
 * and buffer to host memory and gives their device buffers back to the pool; `reloadFromHost` uploads the same
 * bytes again. The module keeps its tensor objects throughout (layers hold them by reference); while offloaded
 * they refuse to be used. The host copy is kept after a reload, so offloading an unchanged module again frees
 * its buffers without reading them back.
 */
import type { PooledBuffer } from '../device/buffer-pool.js';
import type { Device } from '../device/device.js';
import { tensor, tensorFromHalfBits } from '../forward/creation.js';
import { Storage } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';
import type { Module } from './module.js';

/** A storage standing for values held on the host: any use is an error naming the tensor. */
class OffloadedStorage extends Storage {
  constructor(
    device: Device,
    byteLength: number,
    private readonly what: string,
  ) {
    super(device, null, byteLength);
  }

  override get entry(): PooledBuffer {
    throw new Error(`${this.what} is offloaded to host memory; call reloadFromHost on its module before using it`);
  }
}

interface HostCopy {
  values: Float32Array | Uint16Array | Int32Array;
  /** The storage the last reload uploaded (still the tensor's: nothing wrote to it since, no read needed). */
  uploaded: Storage | null;
}

const copies = new WeakMap<Module, Map<Tensor, HostCopy>>();
const offloaded = new WeakSet<Module>();

/** The module's parameters and buffers, each tensor once, with its name. */
function tensorsOf(module: Module): [string, Tensor][] {
  const seen = new Map<Tensor, string>();
  for (const [name, t] of [...module.namedParameters(), ...module.namedBuffers()]) if (!seen.has(t)) seen.set(t, name);
  return [...seen].map(([t, name]) => [name, t]);
}

async function read(t: Tensor): Promise<HostCopy['values']> {
  if (t.dtype === 'float16') return t.halfBits();
  return t.dtype === 'int32' ? t.intData() : t.data();
}

function upload(t: Tensor, values: HostCopy['values']): Tensor {
  if (t.dtype === 'float16') return tensorFromHalfBits(values as Uint16Array, t.shape);
  return tensor(values as Float32Array | Int32Array, t.shape, t.dtype);
}

/** Whether `module` is offloaded (its tensors unusable until `reloadFromHost`). */
export function isOffloaded(module: Module): boolean {
  return offloaded.has(module);
}

/**
 * Moves `module`'s parameters and buffers to host memory and frees their device buffers (back to the pool).
 * Waits for the device to finish the work queued before (the values are read back) unless the module was
 * reloaded and left unchanged since. Tensors that were never allocated (`nn.withoutInit`) have nothing to copy
 * and stay as they are. Do not convert (`half()`) or load an offloaded module; reload it first.
 */
export async function offloadToHost(module: Module): Promise<void> {
  if (offloaded.has(module)) return;
  const own = copies.get(module) ?? new Map<Tensor, HostCopy>();
  const entries = tensorsOf(module).filter(([, t]) => t.storage.allocated);
  // Read everything first (one wait for the queue), then free.
  for (const [, t] of entries) {
    const copy = own.get(t);
    if (!copy || copy.uploaded !== t.storage) own.set(t, { values: await read(t), uploaded: null });
  }
  const prefix = module.constructor.name;
  for (const [name, t] of entries) {
    const placeholder = new Tensor(new OffloadedStorage(t.device, t.byteLength, `${prefix}.${name}`), t.shape, t.dtype);
    t.setData(placeholder);
    placeholder.dispose();
  }
  copies.set(module, own);
  offloaded.add(module);
}

/** Uploads an offloaded module's values again, bit for bit (no-op when it is not offloaded). */
export function reloadFromHost(module: Module): void {
  if (!offloaded.has(module)) return;
  const own = copies.get(module)!;
  for (const [t, copy] of own) {
    const fresh = upload(t, copy.values);
    t.setData(fresh);
    fresh.dispose();
    copy.uploaded = t.storage;
  }
  offloaded.delete(module);
}

/** Drops the host copy of a module that is not offloaded (its memory returns to the JS heap). */
export function dropHostCopy(module: Module): void {
  if (!offloaded.has(module)) copies.delete(module);
}
