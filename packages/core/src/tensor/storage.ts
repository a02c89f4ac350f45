import type { PooledBuffer } from '../device/buffer-pool.js';
import type { Device } from '../device/device.js';

/**
 * A reference-counted GPU buffer. Several tensors can share one storage (reshape, detach and aliases are
 * views); the buffer returns to the pool when the last of them is disposed.
 *
 * A storage created without a buffer (`entry` null: contents undefined, as `nn.withoutInit` builds
 * parameters) takes one from the pool on first use only, so a model whose weights are about to be replaced
 * by loaded ones, or whose parameter names and shapes are all that is needed, never allocates them.
 */
export class Storage {
  private refs = 1;
  private buffer: PooledBuffer | null;

  constructor(
    readonly device: Device,
    entry: PooledBuffer | null,
    readonly byteLength: number,
  ) {
    this.buffer = entry;
  }

  /** The GPU buffer (acquired now if this storage was created without one). */
  get entry(): PooledBuffer {
    return (this.buffer ??= this.device.pool.acquire(this.byteLength));
  }

  /** Whether a GPU buffer is held (false for a deferred storage nothing has used yet). */
  get allocated(): boolean {
    return this.buffer !== null;
  }

  retain(): this {
    this.refs++;
    return this;
  }

  release(): void {
    if (--this.refs === 0 && this.buffer) this.device.pool.release(this.buffer);
  }
}
