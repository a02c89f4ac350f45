import { type Grid, type Kernel, type UniformField, uniformLayout } from '@leffa-webgpu/kernels-wgsl';
import { type AcquireOptions, type AdapterReport, acquireGpuDevice } from './adapter.js';
import { BufferPool, type MemoryStats, type PooledBuffer } from './buffer-pool.js';
import { beginQuietWait, canQuietWait, endQuietWait } from './quiet-wait.js';

/** Uniform values by field name: numbers for scalars, number arrays for array fields (zero-padded). */
export type UniformValues = Record<string, number | readonly number[]>;

/** A pooled buffer bound to a dispatch, with the bytes the kernel may touch. */
interface BoundBuffer {
  entry: PooledBuffer;
  bytes: number;
}

/** Bind groups kept for reuse at most (a training step of the tiny UNet makes about 1200). */
const MAX_CACHED_BIND_GROUPS = 16384;

interface CompiledKernel {
  /** Distinct per pipeline: part of the bind-group cache's keys. */
  id: number;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  uniformOffsets: number[];
  uniformSize: number;
  fields: readonly UniformField[];
}

export interface DeviceOptions extends AcquireOptions {
  /** Dispatches encoded before a submit is forced (bounds the memory that pending work pins). */
  maxDispatchesPerSubmit?: number;
  /**
   * While work is pending, let Dawn's Node binding poll for it on a millisecond timer instead of spinning a core
   * (see quiet-wait.ts). Default: on for CPU adapters in Node, whose kernels need those cores; off elsewhere.
   */
  quietWait?: boolean;
}

const UNIFORM_ARENA_BYTES = 1 << 18;
const MAP_READ_COPY_DST = 0x0001 | 0x0008;

/**
 * One WebGPU device with the machinery every op needs: a pipeline cache keyed by kernel, a buffer pool,
 * and command batching. Dispatches are recorded into one command encoder (one compute pass) and submitted
 * lazily: on readback, or every `maxDispatchesPerSubmit` dispatches. Uniforms of a batch live in one arena
 * buffer that is written right before the submit, so recording a dispatch does no queue work at all.
 */
export class Device {
  readonly pool: BufferPool;
  private pipelines = new Map<string, CompiledKernel>();
  private byKernel = new WeakMap<Kernel, CompiledKernel>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private batchId = 0;
  private dispatchesInBatch = 0;
  private readonly maxDispatches: number;
  /** Whether pending waits defer Dawn's event polling to a timer (DeviceOptions.quietWait). */
  private readonly quietWait: boolean;
  private readonly uniformAlign: number;
  private uniformArena: GPUBuffer;
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  /** The pool's `destroyed` count when the bind-group cache was last valid. */
  private bindGroupsAt = 0;
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 0;
  private uniformCpu = new ArrayBuffer(UNIFORM_ARENA_BYTES);
  private uniformUsed = 0;
  private pendingReads: {
    staging: GPUBuffer;
    flag?: GPUBuffer;
    checkedUpTo?: number;
    resolve: (b: ArrayBuffer) => void;
    reject: (e: unknown) => void;
  }[] = [];
  /**
   * Device-side index checks (`indexCheckFlag`): a two-word flag buffer that check kernels claim with their id
   * and the offending value, the host messages of the checks recorded since the last readback, and whether any was.
   */
  private indexChecks: {
    flag: PooledBuffer & { buffer: GPUBuffer };
    messages: Map<number, string>;
    nextId: number;
    armed: boolean;
  } | null = null;
  private flushScheduled = false;
  /** Completion promises of submitted batches that have not finished yet, oldest first. */
  private inFlight: Promise<void>[] = [];
  private warnedDepth = false;
  private errors: string[] = [];
  private allocationErrors: string[] = [];
  private dry = false;
  /** Counters for benchmarks and tests. */
  readonly counters = { dispatches: 0, submits: 0, pipelinesCompiled: 0, bindGroupsCreated: 0, readbacks: 0 };

  constructor(
    readonly gpu: GPUDevice,
    readonly report: AdapterReport,
    options: DeviceOptions = {},
    /** Objects the device depends on staying alive (Dawn's GPU instance and adapter). */
    private readonly owners: unknown[] = [],
  ) {
    this.pool = new BufferPool(gpu);
    this.maxDispatches = options.maxDispatchesPerSubmit ?? 512;
    this.quietWait = (options.quietWait ?? report.isCpu) && canQuietWait();
    this.uniformAlign = gpu.limits.minUniformBufferOffsetAlignment;
    this.uniformArena = gpu.createBuffer({ size: UNIFORM_ARENA_BYTES, usage: 0x40 | 0x08 }); // UNIFORM | COPY_DST
    gpu.addEventListener?.('uncapturederror', (e) => {
      this.errors.push((e as GPUUncapturedErrorEvent).error.message);
    });
    // A failed allocation is reported first, naming the op that allocated: the errors of later ops that used
    // the unusable buffer follow from it.
    this.pool.onOutOfMemory = (message) => this.allocationErrors.push(message);
  }

  static async create(options: DeviceOptions = {}): Promise<Device> {
    const { device, report, owners } = await acquireGpuDevice(options);
    return new Device(device, report, options, owners);
  }

  get hasSubgroups(): boolean {
    return this.report.features.includes('subgroups');
  }

  /** Whether float16 tensors can be used (the shader-f16 feature). */
  get hasF16(): boolean {
    return this.report.features.includes('shader-f16');
  }

  memoryStats(): MemoryStats {
    return this.pool.memoryStats();
  }

  /** Whether a dry run is in progress (see `dryRun`). */
  get isDryRun(): boolean {
    return this.dry;
  }

  /**
   * Runs `fn` as a dry run: every op takes and releases its buffers in the pool as it would for real (so
   * `memoryStats`, peaks included, come out exactly as a real run's), but nothing is executed or written on the
   * device and buffers the pool would create are accounted only. This is exact because the pool's decisions
   * depend on the order of acquires and releases alone, not on the device finishing work (see BufferPool); it
   * holds for code whose allocations do not depend on values it reads back: inside a dry run, tensors it
   * allocated read as zeros, older ones as their contents before it (writes to them are not executed either).
   * Checks that need no execution (shapes, storage binding and buffer size limits) still throw. Tensors created
   * or written inside have undefined contents, and those created inside may have no device memory, so they cannot
   * be used after it: measure on a model that is discarded or reloaded afterwards.
   */
  async dryRun<R>(fn: () => R | Promise<R>): Promise<R> {
    if (this.dry) return fn();
    this.flush();
    this.dry = true;
    this.pool.dry = true;
    try {
      return await fn();
    } finally {
      this.dry = false;
      this.pool.dry = false;
      this.pool.dropDry();
    }
  }

  /** The device buffer of an entry; throws for one a dry run took outside that run. */
  private bufferOf(entry: PooledBuffer, use: string): GPUBuffer {
    if (!entry.buffer)
      throw new Error(
        `${use}: the tensor was created in a dry run (Device.dryRun), which gives it no device memory; it cannot be used after that run`,
      );
    return entry.buffer;
  }

  private compile(kernel: Kernel): CompiledKernel {
    // Kernel factories are memoised, so the same object comes back for the same specialisation: look it up
    // by identity first (hashing long keys on every dispatch was measurable), then by key.
    let compiled = this.byKernel.get(kernel);
    if (compiled) return compiled;
    compiled = this.pipelines.get(kernel.key);
    if (compiled) {
      this.byKernel.set(kernel, compiled);
      return compiled;
    }
    const entries: GPUBindGroupLayoutEntry[] = [];
    let binding = 0;
    if (kernel.uniforms.length > 0) {
      // A dynamic offset into the uniform arena, so one bind group serves every dispatch on the same buffers.
      entries.push({
        binding: binding++,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: 'uniform', hasDynamicOffset: true },
      });
    }
    for (const b of kernel.buffers) {
      entries.push({
        binding: binding++,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' },
      });
    }
    this.gpu.pushErrorScope('validation');
    const layout = this.gpu.createBindGroupLayout({ entries });
    const enables = this.hasSubgroups && kernel.code.includes('subgroup') ? 'enable subgroups;\n' : '';
    const module = this.gpu.createShaderModule({ code: enables + kernel.code, label: kernel.key });
    const pipeline = this.gpu.createComputePipeline({
      label: kernel.key,
      layout: this.gpu.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    void this.gpu.popErrorScope().then((err) => {
      if (err) this.errors.push(`kernel ${kernel.key} failed to compile: ${err.message}`);
    });
    const { offsets, size } = uniformLayout(kernel.uniforms);
    compiled = {
      id: this.pipelines.size,
      pipeline,
      layout,
      uniformOffsets: offsets,
      uniformSize: size,
      fields: kernel.uniforms,
    };
    this.pipelines.set(kernel.key, compiled);
    this.byKernel.set(kernel, compiled);
    this.counters.pipelinesCompiled++;
    return compiled;
  }

  private writeUniforms(c: CompiledKernel, values: UniformValues): number {
    const aligned = Math.ceil(this.uniformUsed / this.uniformAlign) * this.uniformAlign;
    if (aligned + c.uniformSize > UNIFORM_ARENA_BYTES) {
      this.flush();
      return this.writeUniforms(c, values);
    }
    const view = new DataView(this.uniformCpu, aligned, c.uniformSize);
    c.fields.forEach((f, i) => {
      const v = values[f.name];
      if (v === undefined) throw new Error(`dispatch: uniform '${f.name}' missing`);
      const scalar = typeof f.type === 'string' ? f.type : f.type.array;
      const list = typeof v === 'number' ? [v] : v;
      const count = typeof f.type === 'string' ? 1 : Math.ceil(f.type.length / 4) * 4;
      for (let j = 0; j < count; j++) {
        const x = list[j] ?? 0;
        const at = c.uniformOffsets[i]! + 4 * j;
        if (scalar === 'f32') view.setFloat32(at, x, true);
        else if (scalar === 'i32') view.setInt32(at, x, true);
        else view.setUint32(at, x, true);
      }
    });
    this.uniformUsed = aligned + c.uniformSize;
    return aligned;
  }

  private ensurePass(): GPUComputePassEncoder {
    this.encoder ??= this.gpu.createCommandEncoder();
    this.pass ??= this.encoder.beginComputePass();
    return this.pass;
  }

  /** A compute pass of its own for one profiled dispatch, with timestamps at its start and end. */
  private timedPass(slot: { querySet: GPUQuerySet; index: number }): GPUComputePassEncoder {
    const encoder = this.ensureEncoderOutsidePass();
    return encoder.beginComputePass({
      timestampWrites: {
        querySet: slot.querySet,
        beginningOfPassWriteIndex: slot.index,
        endOfPassWriteIndex: slot.index + 1,
      },
    });
  }

  private profiler: KernelProfiler | null = null;

  /**
   * Runs `fn` with every dispatch in its own timestamped compute pass and returns the GPU time per kernel
   * (needs the timestamp-query feature). Profiling changes batching, so absolute times are indicative.
   */
  async profile(fn: () => void | Promise<void>): Promise<KernelTimes> {
    if (!this.report.features.includes('timestamp-query'))
      throw new Error('profile: the adapter has no timestamp-query feature');
    this.flush();
    const profiler = new KernelProfiler(this.gpu);
    this.profiler = profiler;
    try {
      await fn();
      this.flush();
    } finally {
      this.profiler = null;
    }
    return profiler.collect((encoder) => {
      this.encoder = encoder;
      this.flush();
    });
  }

  private ensureEncoderOutsidePass(): GPUCommandEncoder {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return (this.encoder ??= this.gpu.createCommandEncoder());
  }

  /**
   * Records one dispatch. `buffers` follow the kernel's buffer order; each binding covers `bytes` of the
   * pooled buffer (the tensor's size), not the whole size class.
   */
  dispatch(kernel: Kernel, buffers: readonly BoundBuffer[], uniforms: UniformValues, grid: Grid): void {
    if (grid[0] === 0 || grid[1] === 0 || grid[2] === 0) return;
    if (buffers.length !== kernel.buffers.length) {
      throw new Error(`dispatch ${kernel.key}: ${buffers.length} buffers given, kernel binds ${kernel.buffers.length}`);
    }
    const limit = this.gpu.limits.maxStorageBufferBindingSize;
    buffers.forEach((b, i) => {
      if (b.bytes > limit) {
        throw new Error(
          `${kernel.key}: buffer '${kernel.buffers[i]!.name}' needs ${b.bytes} bytes, over this adapter's storage binding ` +
            `limit of ${limit} bytes (${(limit / 2 ** 20).toFixed(0)} MiB, maxStorageBufferBindingSize); split the work into smaller pieces`,
        );
      }
    });
    if (this.dry) {
      // Nothing runs (the buffers are already accounted by the pool), but a grid the device would refuse fails
      // here as the real run would fail in validation.
      const most = this.gpu.limits.maxComputeWorkgroupsPerDimension;
      if (grid.some((n) => n > most))
        throw new Error(
          `dispatch ${kernel.key}: grid [${grid.join(', ')}] is over this adapter's ${most} workgroups per dimension`,
        );
      this.counters.dispatches++;
      return;
    }
    const c = this.compile(kernel);
    const uniformOffset = kernel.uniforms.length > 0 ? this.writeUniforms(c, uniforms) : -1;
    for (const b of buffers) b.entry.lastBatch = this.batchId;
    const bindGroup = this.bindGroupFor(c, kernel, buffers);
    const timed = this.profiler?.begin(kernel.key);
    const pass = timed ? this.timedPass(timed) : this.ensurePass();
    pass.setPipeline(c.pipeline);
    pass.setBindGroup(0, bindGroup, uniformOffset >= 0 ? [uniformOffset] : []);
    pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    if (timed) {
      pass.end();
      this.pass = null;
    }
    this.counters.dispatches++;
    if (++this.dispatchesInBatch >= this.maxDispatches) this.flush();
  }

  /**
   * The bind group of a kernel on these buffers, made once and reused: a training loop binds the same pooled
   * buffers step after step, and creating a bind group costs more host time on Dawn than the dispatch itself.
   * The uniforms come through a dynamic offset, so they are not part of it. Keys name buffers by identity, so a
   * destroyed buffer's groups are never hit again; the cache is emptied when the pool destroys buffers (so that it
   * does not hold on to them) and when it grows past a bound.
   */
  private bindGroupFor(c: CompiledKernel, kernel: Kernel, buffers: readonly BoundBuffer[]): GPUBindGroup {
    if (this.bindGroupsAt !== this.pool.destroyed || this.bindGroups.size >= MAX_CACHED_BIND_GROUPS) {
      this.bindGroups.clear();
      this.bindGroupsAt = this.pool.destroyed;
    }
    let key = `${c.id}`;
    const gpuBuffers = buffers.map((b) => this.bufferOf(b.entry, kernel.key));
    gpuBuffers.forEach((g, i) => {
      key += `,${this.bufferId(g)}:${buffers[i]!.bytes}`;
    });
    let group = this.bindGroups.get(key);
    if (group) return group;
    const entries: GPUBindGroupEntry[] = [];
    if (kernel.uniforms.length > 0) {
      entries.push({ binding: 0, resource: { buffer: this.uniformArena, offset: 0, size: c.uniformSize } });
    }
    gpuBuffers.forEach((buffer, i) => {
      entries.push({
        binding: entries.length,
        resource: { buffer, offset: 0, size: Math.max(4, Math.ceil(buffers[i]!.bytes / 4) * 4) },
      });
    });
    group = this.gpu.createBindGroup({ layout: c.layout, entries });
    this.counters.bindGroupsCreated++;
    this.bindGroups.set(key, group);
    return group;
  }

  private bufferId(buffer: GPUBuffer): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) this.bufferIds.set(buffer, (id = this.nextBufferId++));
    return id;
  }

  /** Allocates a pooled buffer and fills it with `data`, ordered after every dispatch recorded so far. */
  upload(data: ArrayBufferView, what?: string): PooledBuffer {
    const entry = this.pool.acquire(data.byteLength, what);
    this.write(entry, data);
    return entry;
  }

  /** Overwrites the start of a buffer with `data`, ordered after every dispatch recorded so far. */
  write(entry: PooledBuffer, data: ArrayBufferView): void {
    if (this.dry) return;
    const buffer = this.bufferOf(entry, 'write');
    // A queue write runs before the commands still being recorded, so a buffer they use must be flushed first.
    if (entry.lastBatch === this.batchId && this.encoder) this.flush();
    const bytes = Math.ceil(data.byteLength / 4) * 4;
    if (bytes === data.byteLength) {
      this.gpu.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, bytes);
    } else {
      const padded = new Uint8Array(bytes);
      padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.gpu.queue.writeBuffer(buffer, 0, padded);
    }
  }

  /**
   * Refuses, before anything is allocated, a tensor that no kernel could bind (over maxStorageBufferBindingSize)
   * or that the device cannot create at all (over maxBufferSize), naming the op and the shape: otherwise the
   * failure would surface as an error of a later, unrelated op and the memory statistics would count it.
   */
  checkAllocation(op: string, shapeText: string, bytes: number): void {
    const { maxBufferSize, maxStorageBufferBindingSize } = this.gpu.limits;
    const limit = Math.min(maxBufferSize, maxStorageBufferBindingSize);
    if (bytes > limit) {
      const which =
        limit === maxStorageBufferBindingSize
          ? 'storage binding limit (maxStorageBufferBindingSize)'
          : 'buffer size limit (maxBufferSize)';
      throw new RangeError(
        `${op}: a tensor of shape ${shapeText} needs ${bytes} bytes, over this adapter's ${which} of ${limit} bytes ` +
          `(${(limit / 2 ** 20).toFixed(0)} MiB); split the work into smaller pieces`,
      );
    }
  }

  /**
   * Registers a device-side index check whose failure `message` reports (`{value}` is replaced by the offending
   * index): returns the flag buffer to bind and the id the check kernel writes. The next readback reports it.
   */
  indexCheckFlag(message: string): { flag: PooledBuffer; id: number } {
    if (!this.indexChecks) {
      // Its own buffer, outside the pool: it lives as long as the device and is never recycled.
      const flag: PooledBuffer & { buffer: GPUBuffer } = {
        buffer: this.gpu.createBuffer({ size: 16, usage: 0x80 | 0x04 | 0x08 }),
        size: 16,
        serial: -1,
        lastBatch: -1,
      };
      this.gpu.queue.writeBuffer(flag.buffer, 0, new Uint32Array(2));
      this.indexChecks = { flag, messages: new Map(), nextId: 1, armed: false };
    }
    const c = this.indexChecks;
    const id = c.nextId++;
    c.messages.set(id, message);
    c.armed = true;
    return { flag: c.flag, id };
  }

  /** Copies `bytes` from the start of a buffer to the CPU. Reads requested in the same tick share one submit. */
  read(entry: PooledBuffer, bytes: number): Promise<ArrayBuffer> {
    if (this.dry && entry.takenInDryRun) {
      this.counters.readbacks++;
      return Promise.resolve(new ArrayBuffer(bytes));
    }
    const source = this.bufferOf(entry, 'read');
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.gpu.createBuffer({ size, usage: MAP_READ_COPY_DST });
    const encoder = this.ensureEncoderOutsidePass();
    encoder.copyBufferToBuffer(source, 0, staging, 0, size);
    // Index checks recorded since the last readback are read with it, so a bad index fails this read.
    let flag: GPUBuffer | undefined;
    let checkedUpTo: number | undefined;
    const checks = this.indexChecks;
    if (checks?.armed) {
      checkedUpTo = checks.nextId - 1;
      flag = this.gpu.createBuffer({ size: 8, usage: MAP_READ_COPY_DST });
      encoder.copyBufferToBuffer(checks.flag.buffer, 0, flag, 0, 8);
      checks.armed = false;
    }
    entry.lastBatch = this.batchId;
    this.counters.readbacks++;
    const done = new Promise<ArrayBuffer>((resolve, reject) =>
      this.pendingReads.push({ staging, ...(flag ? { flag, checkedUpTo } : {}), resolve, reject }),
    );
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    return done.then((b) => b.slice(0, bytes));
  }

  /**
   * Submits everything recorded so far. Never throws: WebGPU reports errors asynchronously, so they reject
   * the next readback (or `sync()`) instead.
   */
  flush(): void {
    this.flushScheduled = false;
    if (!this.encoder) return;
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (this.uniformUsed > 0) {
      this.gpu.queue.writeBuffer(this.uniformArena, 0, this.uniformCpu, 0, Math.ceil(this.uniformUsed / 4) * 4);
    }
    this.gpu.queue.submit([this.encoder.finish()]);
    this.counters.submits++;
    this.beginWait();
    const done = this.gpu.queue
      .onSubmittedWorkDone()
      .then(() => {
        this.inFlight.splice(this.inFlight.indexOf(done), 1);
      })
      .finally(() => this.endWait());
    this.inFlight.push(done);
    if (this.inFlight.length > 64 && !this.warnedDepth) {
      this.warnedDepth = true;
      console.warn(
        `leffa-webgpu: ${this.inFlight.length} batches of GPU work are queued; loops that never await should call \`await throttle()\` each iteration`,
      );
    }
    this.encoder = null;
    this.uniformUsed = 0;
    this.dispatchesInBatch = 0;
    this.batchId++;
    const reads = this.pendingReads;
    this.pendingReads = [];
    for (const r of reads) {
      this.beginWait();
      Promise.all([r.staging.mapAsync(0x0001), r.flag?.mapAsync(0x0001)]).then(
        () => {
          this.endWait();
          const copy = r.staging.getMappedRange().slice(0);
          r.staging.unmap();
          r.staging.destroy();
          const err = this.takeErrors() ?? this.takeIndexError(r.flag, r.checkedUpTo ?? 0);
          if (err) r.reject(err);
          else r.resolve(copy);
        },
        (e) => {
          this.endWait();
          r.reject(e);
        },
      );
    }
  }

  private beginWait(): void {
    if (this.quietWait) beginQuietWait();
  }

  private endWait(): void {
    if (this.quietWait) endQuietWait();
  }

  /**
   * Backpressure for long loops: submits what is recorded, then waits until at most `maxInFlight` batches are
   * still executing. Recording is synchronous and much faster than a CPU adapter executes, and completed work
   * is only reclaimed when the event loop turns, so a loop that never awaits would queue without bound.
   */
  async throttle(maxInFlight = 2): Promise<void> {
    this.flush();
    while (this.inFlight.length > maxInFlight) await this.inFlight[0];
  }

  /** Waits until the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.gpu.queue.onSubmittedWorkDone();
    this.throwPendingErrors();
  }

  /** The failed index check in a read-back flag, if any (the flag is then cleared for the next checks). */
  private takeIndexError(flag: GPUBuffer | undefined, checkedUpTo: number): Error | null {
    if (!flag) return null;
    const [id, bits] = new Uint32Array(flag.getMappedRange().slice(0));
    flag.unmap();
    flag.destroy();
    const checks = this.indexChecks;
    if (!checks) return null;
    if (!id) {
      // Every check recorded before this read passed: their messages are no longer needed.
      for (const k of checks.messages.keys()) if (k <= checkedUpTo) checks.messages.delete(k);
      return null;
    }
    const message = checks.messages.get(id!) ?? 'index check: an index was out of range ({value})';
    checks.messages.clear();
    this.gpu.queue.writeBuffer(checks.flag.buffer, 0, new Uint32Array(2));
    return new RangeError(message.replace('{value}', String(new Int32Array(Uint32Array.of(bits!).buffer)[0])));
  }

  private takeErrors(): Error | null {
    if (this.allocationErrors.length > 0) {
      const msg = [...this.allocationErrors, ...this.errors.map((e) => `then: ${e}`)].join('\n');
      this.allocationErrors = [];
      this.errors = [];
      return new RangeError(msg);
    }
    if (this.errors.length === 0) return null;
    const msg = this.errors.join('\n');
    this.errors = [];
    return new Error(`WebGPU error: ${msg}`);
  }

  private throwPendingErrors(): void {
    const err = this.takeErrors();
    if (err) throw err;
  }
}

/** GPU time per kernel key (milliseconds) and dispatch counts, from `Device.profile`. */
export type KernelTimes = Map<string, { ms: number; count: number }>;

/** Timestamp query slots handed out to dispatches, resolved and read back once profiling ends. */
class KernelProfiler {
  private sets: GPUQuerySet[] = [];
  private keys: string[] = [];
  private static readonly SLOTS = 4096;

  constructor(private readonly gpu: GPUDevice) {}

  begin(key: string): { querySet: GPUQuerySet; index: number } {
    const n = this.keys.length;
    const local = (n % (KernelProfiler.SLOTS / 2)) * 2;
    if (local === 0) this.sets.push(this.gpu.createQuerySet({ type: 'timestamp', count: KernelProfiler.SLOTS }));
    this.keys.push(key);
    return { querySet: this.sets[this.sets.length - 1]!, index: local };
  }

  async collect(submit: (encoder: GPUCommandEncoder) => void): Promise<KernelTimes> {
    const times: KernelTimes = new Map();
    const bytes = KernelProfiler.SLOTS * 8;
    for (const [k, set] of this.sets.entries()) {
      const resolved = this.gpu.createBuffer({ size: bytes, usage: 0x0200 | 0x0004 }); // QUERY_RESOLVE | COPY_SRC
      const staging = this.gpu.createBuffer({ size: bytes, usage: 0x0001 | 0x0008 }); // MAP_READ | COPY_DST
      const encoder = this.gpu.createCommandEncoder();
      encoder.resolveQuerySet(set, 0, KernelProfiler.SLOTS, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
      submit(encoder);
      await staging.mapAsync(0x0001);
      const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      const first = k * (KernelProfiler.SLOTS / 2);
      for (let i = first; i < Math.min(this.keys.length, first + KernelProfiler.SLOTS / 2); i++) {
        const local = (i - first) * 2;
        const ms = Number(stamps[local + 1]! - stamps[local]!) / 1e6;
        const key = this.keys[i]!;
        const t = times.get(key) ?? { ms: 0, count: 0 };
        t.ms += ms;
        t.count++;
        times.set(key, t);
      }
      for (const b of [resolved, staging]) b.destroy();
      set.destroy();
    }
    return times;
  }
}

let current: Promise<Device> | null = null;

/**
 * The process-wide device, created on first use. Browsers use navigator.gpu; Node loads Dawn from the
 * `webgpu` package. Throws with setup instructions when no adapter exists.
 */
export function getDevice(options: DeviceOptions = {}): Promise<Device> {
  current ??= Device.create(options).then((d) => {
    active = d;
    return d;
  });
  current.catch(() => {
    current = null;
  });
  return current;
}

let active: Device | null = null;

/** The device initialised by `getDevice()`; ops use it synchronously. */
export function activeDevice(): Device {
  if (!active) throw new Error('No device: call `await getDevice()` (or `await init()`) before creating tensors');
  return active;
}
