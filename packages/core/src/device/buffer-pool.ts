/**
 * A caching allocator for storage buffers. Sizes are rounded up to size classes (powers of two split into
 * four steps, so at most 25% is wasted) and released buffers are kept per class for reuse, so a training
 * loop that allocates the same shapes every step stops creating GPU buffers after its first step.
 */

export interface PooledBuffer {
  readonly buffer: GPUBuffer;
  /** Capacity in bytes (the size class). */
  readonly size: number;
  /** Id of the last command batch that referenced this buffer (to order queue writes after it). */
  lastBatch: number;
}

export interface MemoryStats {
  /** Bytes of buffers currently held by tensors (by capacity, i.e. size class). */
  liveBytes: number;
  liveBuffers: number;
  /** Bytes of released buffers kept for reuse. */
  pooledBytes: number;
  pooledBuffers: number;
  /** Highest liveBytes seen since the last `resetPeak()`. */
  peakLiveBytes: number;
}

const MIN_CLASS = 256;

export function sizeClass(bytes: number): number {
  if (bytes <= MIN_CLASS) return MIN_CLASS;
  const pow = 2 ** Math.floor(Math.log2(bytes));
  const step = pow / 4;
  return Math.ceil(bytes / step) * step;
}

const USAGE_STORAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

export class BufferPool {
  private free = new Map<number, PooledBuffer[]>();
  private stats: MemoryStats = { liveBytes: 0, liveBuffers: 0, pooledBytes: 0, pooledBuffers: 0, peakLiveBytes: 0 };

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number): PooledBuffer {
    const size = sizeClass(bytes);
    const list = this.free.get(size);
    let entry = list?.pop();
    if (entry) {
      this.stats.pooledBytes -= size;
      this.stats.pooledBuffers--;
    } else {
      entry = { buffer: this.device.createBuffer({ size, usage: USAGE_STORAGE }), size, lastBatch: -1 };
    }
    this.stats.liveBytes += size;
    this.stats.liveBuffers++;
    this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
    return entry;
  }

  release(entry: PooledBuffer): void {
    this.stats.liveBytes -= entry.size;
    this.stats.liveBuffers--;
    this.stats.pooledBytes += entry.size;
    this.stats.pooledBuffers++;
    let list = this.free.get(entry.size);
    if (!list) this.free.set(entry.size, (list = []));
    list.push(entry);
  }

  /** Destroys every cached (released) buffer, returning their memory to the driver. */
  emptyCache(): void {
    for (const list of this.free.values()) for (const e of list) e.buffer.destroy();
    this.free.clear();
    this.stats.pooledBytes = 0;
    this.stats.pooledBuffers = 0;
  }

  memoryStats(): MemoryStats {
    return { ...this.stats };
  }

  resetPeak(): void {
    this.stats.peakLiveBytes = this.stats.liveBytes;
  }
}
