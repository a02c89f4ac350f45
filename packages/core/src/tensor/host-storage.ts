import type { PooledBuffer } from '../device/buffer-pool.js';
import type { Device } from '../device/device.js';
import { Storage } from './storage.js';

/** A tensor's values on the host, by dtype: float32 as Float32Array, float16 as IEEE half bits, int32 as Int32Array. */
export type HostValues = Float32Array | Uint16Array | Int32Array;

/**
 * A storage whose values live in host memory and which has no GPU buffer: how a module's weights wait off the
 * device (`nn.offloadToHost`) and how weights load without ever touching it (the loaders' `host` option, and
 * `Module.loadStateDict` into an offloaded module). Using it on the device is an error naming the tensor (`what`)
 * and saying what to do (`remedy`); reading its values back works. `values` is null where the contents are undefined
 * (a never-initialised parameter placed on the host before its weights load).
 */
export class HostStorage extends Storage {
  constructor(
    device: Device,
    byteLength: number,
    readonly values: HostValues | null,
    readonly what: string,
    readonly remedy: string,
  ) {
    super(device, null, byteLength);
  }

  override get entry(): PooledBuffer {
    throw new Error(`${this.what} is in host memory; ${this.remedy}`);
  }
}
