/**
 * A caching allocator for storage buffers. Sizes are rounded up to size classes (powers of two split into
 * four steps, so at most 25% is wasted) and released buffers are kept per class for reuse, so a training
 * loop that allocates the same shapes every step stops creating GPU buffers after its first step.
 *
 * The statistics depend only on the order of acquires and releases (sizes by class, reuse by class), never on
 * what the device has finished: so a dry run (`dry`, see Device.dryRun), which takes entries without device
 * buffers where it would create them, accounts exactly what the same calls would hold for real.
 */

export interface PooledBuffer {
  /** Null for an entry a dry run took (accounted, no device memory behind it). */
  readonly buffer: GPUBuffer | null;
  /** Capacity in bytes (the size class). */
  readonly size: number;
  /** Creation order within the pool: free lists are kept sorted by it (see `release`). */
  readonly serial: number;
  /** Id of the last command batch that referenced this buffer (to order queue writes after it). */
  lastBatch: number;
  /** Set when a dry run took this entry (its contents are undefined; a read in the run gives zeros). */
  takenInDryRun?: boolean;
  /** Set when the device reported that creating the buffer ran out of memory (the buffer is unusable). */
  failed?: boolean;
  /** Set when `emptyCache` destroyed the buffer (it is counted nowhere). */
  dropped?: boolean;
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
  /** Highest liveBytes + pooledBytes (what the pool holds from the driver) since the last `resetPeak()`. */
  peakHeldBytes: number;
}

const MIN_CLASS = 256;

/** Buffers from 1 MiB on are rounded to sixteenths of their power of two (at most 6% over), smaller ones to quarters. */
const FINE_CLASSES_FROM = 2 ** 20;

export function sizeClass(bytes: number): number {
  if (bytes <= MIN_CLASS) return MIN_CLASS;
  const pow = 2 ** Math.floor(Math.log2(bytes));
  // Large buffers are mostly weights that live as long as the model: coarse classes would waste up to a quarter.
  const step = pow / (bytes >= FINE_CLASSES_FROM ? 16 : 4);
  return Math.ceil(bytes / step) * step;
}

const USAGE_STORAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

export class BufferPool {
  private free = new Map<number, PooledBuffer[]>();
  private stats: MemoryStats = {
    liveBytes: 0,
    liveBuffers: 0,
    pooledBytes: 0,
    pooledBuffers: 0,
    peakLiveBytes: 0,
    peakHeldBytes: 0,
  };
  /** Set during a dry run: buffers that would be created are accounted only (entries with a null buffer). */
  dry = false;
  /** Counts the device buffers this pool has destroyed, so that a cache of bind groups can tell when to drop them. */
  destroyed = 0;
  private created = 0;

  constructor(private readonly device: GPUDevice) {}

  /**
   * Called with a message when creating a buffer ran out of device memory. WebGPU reports that asynchronously,
   * after `acquire` has returned: the message names `what` the buffer was for (the op and shape).
   */
  onOutOfMemory: ((message: string) => void) | null = null;

  /** A buffer of at least `bytes`; `what` names its use (e.g. 'zeros: a tensor of shape [4, 4]') in errors. */
  acquire(bytes: number, what = 'a buffer'): PooledBuffer {
    const size = sizeClass(bytes);
    const list = this.free.get(size);
    let entry = list?.pop();
    if (entry) {
      this.stats.pooledBytes -= size;
      this.stats.pooledBuffers--;
    } else if (this.dry) {
      entry = { buffer: null, size, serial: this.created++, lastBatch: -1 };
    } else {
      this.device.pushErrorScope('out-of-memory');
      const created: PooledBuffer = {
        buffer: this.device.createBuffer({ size, usage: USAGE_STORAGE }),
        size,
        serial: this.created++,
        lastBatch: -1,
      };
      void this.device.popErrorScope().then(
        (err) =>
          err &&
          this.failed(
            created,
            `${what}: allocating ${bytes} bytes (a ${size}-byte buffer) failed, out of device memory (${err.message})`,
          ),
        () => {},
      );
      entry = created;
    }
    entry.takenInDryRun = this.dry;
    this.stats.liveBytes += size;
    this.stats.liveBuffers++;
    this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
    this.stats.peakHeldBytes = Math.max(this.stats.peakHeldBytes, this.stats.liveBytes + this.stats.pooledBytes);
    return entry;
  }

  /**
   * A creation that ran out of memory: the buffer no longer counts (live, or pooled if its tensor is already
   * gone), is never handed out again, and the message goes to `onOutOfMemory`.
   */
  private failed(entry: PooledBuffer, message: string): void {
    entry.failed = true;
    const list = this.free.get(entry.size);
    const at = list?.indexOf(entry) ?? -1;
    if (at >= 0) {
      list!.splice(at, 1);
      this.stats.pooledBytes -= entry.size;
      this.stats.pooledBuffers--;
      entry.buffer?.destroy();
      this.destroyed++;
    } else if (!entry.dropped) {
      this.stats.liveBytes -= entry.size;
      this.stats.liveBuffers--;
    }
    this.onOutOfMemory?.(message);
  }

  release(entry: PooledBuffer): void {
    if (entry.failed) {
      // Uncounted when its failure was reported; nothing to pool.
      entry.buffer?.destroy();
      this.destroyed++;
      return;
    }
    this.stats.liveBytes -= entry.size;
    this.stats.liveBuffers--;
    // A dry run's entry freed after that run: nothing behind it to hand out again.
    if (!entry.buffer && !this.dry) return;
    this.stats.pooledBytes += entry.size;
    this.stats.pooledBuffers++;
    let list = this.free.get(entry.size);
    if (!list) this.free.set(entry.size, (list = []));
    // Sorted by creation, newest last (where `acquire` takes from), instead of in release order: a step that
    // starts with the same buffers free then gets the same buffer for each tensor as the step before, whatever
    // order the last step released them in, so every dispatch finds its bind group already made.
    let [lo, hi] = [0, list.length];
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.serial < entry.serial) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, entry);
  }

  /** Destroys every cached (released) buffer, returning their memory to the driver. */
  emptyCache(): void {
    for (const list of this.free.values()) {
      for (const e of list) {
        e.buffer?.destroy();
        this.destroyed++;
        e.dropped = true;
      }
    }
    this.free.clear();
    this.stats.pooledBytes = 0;
    this.stats.pooledBuffers = 0;
  }

  /** Forgets the released entries a dry run took (they have no device buffer to hand out); live ones stay counted. */
  dropDry(): void {
    for (const [size, list] of this.free) {
      const kept = list.filter((e) => e.buffer !== null);
      this.stats.pooledBytes -= (list.length - kept.length) * size;
      this.stats.pooledBuffers -= list.length - kept.length;
      if (kept.length > 0) this.free.set(size, kept);
      else this.free.delete(size);
    }
  }

  memoryStats(): MemoryStats {
    return { ...this.stats };
  }

  resetPeak(): void {
    this.stats.peakLiveBytes = this.stats.liveBytes;
    this.stats.peakHeldBytes = this.stats.liveBytes + this.stats.pooledBytes;
  }
}
