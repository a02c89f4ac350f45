import type { PooledBuffer } from '../device/buffer-pool.js';
import type { Device } from '../device/device.js';

/**
 * A reference-counted GPU buffer. Several tensors can share one storage (reshape, detach and aliases are
 * views); the buffer returns to the pool when the last of them is disposed.
 */
export class Storage {
  private refs = 1;

  constructor(
    readonly device: Device,
    readonly entry: PooledBuffer,
    readonly byteLength: number,
  ) {}

  retain(): this {
    this.refs++;
    return this;
  }

  release(): void {
    if (--this.refs === 0) this.device.pool.release(this.entry);
  }
}
