/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header mapping each name to
 * {dtype, shape, data_offsets: [begin, end]} (offsets relative to the end of the header) plus an optional
 * "__metadata__" string map, then the raw little-endian data.
 *
 * Reading validates everything the header claims (lengths, dtype sizes, bounds, overlaps) before any tensor
 * is touched; F16 and BF16 are widened to float32 unless a `FloatLoad` asks for float16 tensors (then F16 data is
 * uploaded as it is stored, never widened), integer types become int32 (I64 must fit in 32 bits).
 */
import { deviceTensorOf, hostTensor } from '../forward/host.js';
import { bfloat16ToFloat, floatToHalf, halfToFloat } from '../tensor/half.js';
import { formatShape, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { DTYPE_BYTES, type SafetensorsDType } from './dtype-bytes.js';

export type { SafetensorsDType } from './dtype-bytes.js';

export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** [begin, end) byte range within the data section. */
  offsets: [number, number];
}

export interface SafetensorsHeader {
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Byte offset of the data section from the start of the file. */
  dataStart: number;
}

/**
 * CPU-side tensor: float32 for float types, int32 for integer types; or, where a `FloatLoad` made it float16,
 * its half bits in `half` (and `data` empty).
 */
export interface HostTensor {
  shape: number[];
  data: Float32Array | Int32Array;
  half?: Uint16Array;
}

/** What float tensors become when loaded (safetensors, .pth, .pkl). */
export interface FloatLoad {
  /**
   * 'float32' (default): every float tensor is float32 (F16/BF16 widened exactly). 'float16': every float
   * tensor is float16 (F32/F64 rounded to nearest even). 'keep': F16 stays float16, F32/F64 are float32.
   */
  dtype?: 'float32' | 'float16' | 'keep';
  /**
   * BF16 has float32's range, so where dtype is not 'float32' its target must be chosen: 'float16' rounds
   * (values beyond 65504 become infinite), 'float32' is exact.
   */
  bf16?: 'float16' | 'float32';
}

/** What loaded tensors become, and where they go (safetensors, .pth, .pkl). */
export interface TensorLoad extends FloatLoad {
  /**
   * Keep the values in host memory (no device buffer) instead of uploading them: for modules offloaded with
   * `nn.offloadToHost`, which `Module.loadStateDict` fills without touching the device (default false).
   */
  host?: boolean;
}

const FLOAT_TYPES: readonly SafetensorsDType[] = ['F32', 'F16', 'BF16', 'F64'];

/** The device dtype a stored tensor gets under `load` (null for integer types). */
export function floatTarget(
  name: string,
  stored: SafetensorsDType,
  load: FloatLoad = {},
): 'float32' | 'float16' | null {
  if (!FLOAT_TYPES.includes(stored)) return null;
  const want = load.dtype ?? 'float32';
  if (want === 'float32') return 'float32';
  if (stored === 'BF16') {
    if (!load.bf16) {
      throw new Error(
        `tensor '${name}' is BF16: choose what it becomes with bf16: 'float16' (rounded, inf beyond 65504) or 'float32' (exact)`,
      );
    }
    return load.bf16;
  }
  if (want === 'float16') return 'float16';
  return stored === 'F16' ? 'float16' : 'float32';
}

const MAX_HEADER = 100 * 1024 * 1024;
/** More dimensions than any real tensor has; a longer shape is a hostile or corrupt header. */
const MAX_RANK = 64;

/** `__metadata__` is a string-to-string map (the format's definition); anything else is refused. */
function checkMetadata(raw: unknown, source: string): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(
      `${source}: __metadata__ is ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw}, expected an object of strings`,
    );
  }
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string')
      throw new Error(`${source}: __metadata__ entry '${k}' is ${JSON.stringify(v)}, expected a string`);
    out[k] = v;
  }
  return out;
}

/** Reads the header length from the first 8 bytes, checking it against the file size. */
export function headerLength(first8: Uint8Array, fileSize: number, source = 'safetensors'): number {
  if (first8.byteLength < 8 || fileSize < 8)
    throw new Error(`${source}: file is ${fileSize} bytes, too short for a safetensors header`);
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const n = Number(view.getBigUint64(0, true));
  if (n > MAX_HEADER || 8 + n > fileSize) {
    throw new Error(`${source}: bad header length ${n} (file has ${fileSize} bytes)`);
  }
  return n;
}

/** Parses and validates the JSON header. `fileSize` bounds the data section. */
export function parseHeader(headerBytes: Uint8Array, fileSize: number, source = 'safetensors'): SafetensorsHeader {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(new TextDecoder().decode(headerBytes)) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${source}: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(`${source}: header must be a JSON object`);
  const dataStart = 8 + headerBytes.byteLength;
  const dataSize = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = checkMetadata(raw, source);
      continue;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new Error(
        `${source}: tensor '${name}' is described by ${JSON.stringify(raw)}, expected an object {dtype, shape, data_offsets}`,
      );
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    // Own keys only: 'constructor' or '__proto__' must not find Object.prototype.
    if (typeof e.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, e.dtype)) {
      throw new Error(
        `${source}: tensor '${name}' has unsupported dtype ${JSON.stringify(e.dtype)} (expected one of ${Object.keys(DTYPE_BYTES).join(', ')})`,
      );
    }
    const shape = e.shape;
    if (
      !Array.isArray(shape) ||
      shape.length > MAX_RANK ||
      shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)
    ) {
      throw new Error(
        `${source}: tensor '${name}' has an invalid shape ${JSON.stringify(shape)} (expected at most ${MAX_RANK} non-negative integers)`,
      );
    }
    // Every dimension counts, zero-sized tensors included: [0, 1e300] is no shape a writer produces.
    if ((shape as number[]).reduce((acc: number, d: number) => acc * Math.max(d, 1), 1) > Number.MAX_SAFE_INTEGER) {
      throw new Error(
        `${source}: tensor '${name}' has shape ${JSON.stringify(shape)}, whose element count is too large`,
      );
    }
    const offsets = e.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) ||
      offsets[1] < offsets[0]
    ) {
      throw new Error(
        `${source}: tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)} (expected [begin, end], 0 <= begin <= end)`,
      );
    }
    const [begin, end] = offsets as [number, number];
    const dtype = e.dtype as SafetensorsDType;
    const expected = sizeOf(shape as number[]) * DTYPE_BYTES[dtype];
    if (end - begin !== expected) {
      throw new Error(
        `${source}: tensor '${name}' (${dtype} ${formatShape(shape as number[])}) needs ${expected} bytes but data_offsets span ${end - begin}`,
      );
    }
    if (end > dataSize) {
      throw new Error(
        `${source}: tensor '${name}' ends at byte ${end} but the data section has ${dataSize} bytes (file truncated?)`,
      );
    }
    entries.set(name, { dtype, shape: shape as number[], offsets: [begin, end] });
  }
  const sorted = [...entries.entries()].sort((a, b) => a[1].offsets[0] - b[1].offsets[0]);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1]!;
    const [name, cur] = sorted[i]!;
    if (cur.offsets[0] < prev.offsets[1]) {
      throw new Error(`${source}: tensors '${prevName}' and '${name}' overlap in the data section`);
    }
  }
  return { entries, metadata, dataStart };
}

/** 2-byte little-endian values as a Uint16Array (copied, so alignment never matters). */
function uint16s(bytes: Uint8Array, n: number): Uint16Array {
  const out = new Uint16Array(n);
  new Uint8Array(out.buffer).set(bytes.subarray(0, 2 * n));
  return out;
}

/** Decodes one tensor's bytes (little-endian) to float32 or int32, or float16 bits where `load` asks. */
export function decodeTensor(name: string, entry: SafetensorsEntry, bytes: Uint8Array, load?: FloatLoad): HostTensor {
  const n = sizeOf(entry.shape);
  if (floatTarget(name, entry.dtype, load) === 'float16') {
    const half = entry.dtype === 'F16' ? uint16s(bytes, n) : floatToHalf(decodeTensor(name, entry, bytes).data);
    return { shape: entry.shape, data: new Float32Array(0), half };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let data: Float32Array | Int32Array;
  switch (entry.dtype) {
    case 'F32':
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat32(4 * i, true);
      break;
    case 'F64':
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat64(8 * i, true);
      break;
    case 'F16':
      data = halfToFloat(uint16s(bytes, n));
      break;
    case 'BF16':
      data = bfloat16ToFloat(uint16s(bytes, n));
      break;
    case 'I64':
      data = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = view.getBigInt64(8 * i, true);
        if (v > 2147483647n || v < -2147483648n)
          throw new Error(`safetensors: I64 tensor '${name}' has value ${v} outside int32`);
        data[i] = Number(v);
      }
      break;
    case 'I32':
      data = new Int32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getInt32(4 * i, true);
      break;
    case 'I16':
      data = new Int32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getInt16(2 * i, true);
      break;
    case 'I8':
      data = new Int32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      data = new Int32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getUint8(i);
      break;
  }
  return { shape: entry.shape, data };
}

/** Parses a whole safetensors file held in memory. */
export function readSafetensors(
  bytes: Uint8Array,
  source = 'safetensors',
  load?: FloatLoad,
): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  const n = headerLength(bytes.subarray(0, 8), bytes.byteLength, source);
  const header = parseHeader(bytes.subarray(8, 8 + n), bytes.byteLength, source);
  const tensors = new Map<string, HostTensor>();
  for (const [name, e] of header.entries) {
    tensors.set(
      name,
      decodeTensor(name, e, bytes.subarray(header.dataStart + e.offsets[0], header.dataStart + e.offsets[1]), load),
    );
  }
  return { tensors, metadata: header.metadata };
}

export interface SerializeEntry {
  shape: readonly number[];
  data: Float32Array | Int32Array;
  /** Storage type in the file: F32 (default for floats), F16, or I32 (default for ints). */
  dtype?: 'F32' | 'F16' | 'I32';
  /** F16 bits written as they are (a float16 tensor's own values; `data` is then ignored). */
  half?: Uint16Array;
}

/** Builds a safetensors file in memory. Names are written sorted, data 8-byte aligned as the reference does. */
export function serializeSafetensors(
  entries: Record<string, SerializeEntry>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(entries).sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const layout = names.map((name) => {
    const e = entries[name]!;
    const dtype = e.half ? 'F16' : (e.dtype ?? (e.data instanceof Int32Array ? 'I32' : 'F32'));
    const bytes = sizeOf(e.shape) * (dtype === 'F16' ? 2 : 4);
    const count = (e.half ?? e.data).length;
    if (sizeOf(e.shape) !== count) {
      throw new Error(`saveSafetensors: '${name}' has ${count} values for shape ${formatShape(e.shape)}`);
    }
    header[name] = { dtype, shape: e.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
    return { e, dtype, bytes };
  });
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const { e, dtype, bytes } of layout) {
    if (dtype === 'F16') {
      const half = e.half ?? floatToHalf(e.data);
      for (let i = 0; i < half.length; i++) view.setUint16(at + 2 * i, half[i]!, true);
    } else {
      for (let i = 0; i < e.data.length; i++) {
        if (dtype === 'I32') view.setInt32(at + 4 * i, e.data[i]!, true);
        else view.setFloat32(at + 4 * i, e.data[i]!, true);
      }
    }
    at += bytes;
  }
  return out;
}

// ---------------------------------------------------------------- GPU tensors and files

const dtypeOf = (t: HostTensor) => (t.half ? 'float16' : t.data instanceof Int32Array ? 'int32' : 'float32');

/** Uploads host tensors to the device. */
export function toDevice(tensors: Map<string, HostTensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of tensors) out.set(name, deviceTensorOf(t.half ?? t.data, t.shape, dtypeOf(t)));
  return out;
}

/** Host tensors as tensors that stay in host memory (`Tensor.isOnHost`; the values are not copied). */
export function toHost(tensors: Map<string, HostTensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of tensors)
    out.set(
      name,
      hostTensor(
        t.half ?? t.data,
        t.shape,
        dtypeOf(t),
        `tensor '${name}'`,
        'it was loaded with the host option: load it into a module (Module.loadStateDict), or load without host to use it on the device',
      ),
    );
  return out;
}

/** `toHost` or `toDevice`, as `load.host` asks. */
export const placeLoaded = (tensors: Map<string, HostTensor>, load: TensorLoad = {}): Map<string, Tensor> =>
  load.host ? toHost(tensors) : toDevice(tensors);

/**
 * A safetensors file opened for streaming (Node): the header is parsed up front and each tensor is read on
 * demand, so multi-gigabyte checkpoints never sit in memory whole.
 */
export async function openSafetensors(path: string) {
  const fs = await nodeFs();
  const handle = await fs.open(path, 'r').catch((e: Error) => {
    throw new Error(`cannot open '${path}': ${e.message}`);
  });
  try {
    const { size } = await handle.stat();
    const first = new Uint8Array(8);
    await handle.read(first, 0, Math.min(8, size), 0);
    const n = headerLength(first, size, path);
    const headerBytes = new Uint8Array(n);
    await handle.read(headerBytes, 0, n, 8);
    const header = parseHeader(headerBytes, size, path);
    return {
      header,
      async read(name: string, load?: FloatLoad): Promise<HostTensor> {
        const e = header.entries.get(name);
        if (!e) throw new Error(`${path}: no tensor named '${name}'`);
        const bytes = new Uint8Array(e.offsets[1] - e.offsets[0]);
        await handle.read(bytes, 0, bytes.byteLength, header.dataStart + e.offsets[0]);
        return decodeTensor(name, e, bytes, load);
      },
      close: () => handle.close(),
    };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/**
 * Reads the tensors of a safetensors file (a path in Node, or bytes) onto the device, or into host memory with
 * `load.host`; `load` chooses float16 or float32 for the float tensors (default float32).
 */
export async function loadSafetensors(source: string | Uint8Array, load?: TensorLoad): Promise<Map<string, Tensor>> {
  if (typeof source !== 'string') return placeLoaded(readSafetensors(source, 'safetensors', load).tensors, load);
  const file = await openSafetensors(source);
  try {
    const out = new Map<string, Tensor>();
    for (const name of file.header.entries.keys()) {
      out.set(name, placeLoaded(new Map([[name, await file.read(name, load)]]), load).get(name)!);
    }
    return out;
  } finally {
    await file.close();
  }
}

/** Reads tensors back from the device and writes a safetensors file atomically (temp file + rename). */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  options: {
    metadata?: Record<string, string>;
    /** Storage of float32 tensors (default F32); float16 tensors are written as F16 from their bits unless this is F32. */
    dtype?: 'F32' | 'F16';
    /** Refuse (before writing anything) when a value is NaN or infinite; the error names the tensor. */
    requireFinite?: boolean;
    /** The file system (default node:fs/promises); tests inject faults through it. */
    fs?: FileSystem;
  } = {},
): Promise<void> {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const datas = await Promise.all(list.map(([, t]) => (t.dtype === 'int32' ? t.intData() : t.data())));
  // float16 tensors are written as F16 from their own bits unless F32 is asked for.
  const halves = await Promise.all(
    list.map(([, t]) => (t.dtype === 'float16' && options.dtype !== 'F32' ? t.halfBits() : undefined)),
  );
  const entries: Record<string, SerializeEntry> = {};
  list.forEach(([name, t], i) => {
    const data = datas[i]!;
    if (options.requireFinite && data instanceof Float32Array) {
      let bad = 0;
      for (let j = 0; j < data.length; j++) if (!Number.isFinite(data[j]!)) bad++;
      if (bad > 0)
        throw new NonFiniteError(
          `saveSafetensors: '${path}': tensor '${name}' has ${bad} of ${data.length} values NaN or infinite; not written`,
          name,
        );
    }
    entries[name] = {
      shape: t.shape,
      data,
      half: halves[i],
      dtype: data instanceof Int32Array ? 'I32' : (options.dtype ?? 'F32'),
    };
  });
  await writeFileAtomic(path, serializeSafetensors(entries, options.metadata), options.fs);
}

/** Thrown by `saveSafetensors` / `saveCheckpoint` with `requireFinite` when a tensor holds NaN or infinity. */
export class NonFiniteError extends Error {
  constructor(
    message: string,
    /** The offending tensor's name. */
    readonly tensorName: string,
  ) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

/**
 * The part of node:fs/promises that atomic writes and checkpoints use. The default is Node's; tests pass a
 * wrapper that fails chosen calls to check what survives a crash.
 */
export type FileSystem = Pick<
  typeof import('node:fs/promises'),
  'open' | 'rename' | 'rm' | 'mkdir' | 'stat' | 'readdir' | 'readFile'
>;

async function nodeFs(): Promise<FileSystem> {
  const name = 'node:fs/promises';
  return (await import(/* @vite-ignore */ name)) as typeof import('node:fs/promises');
}

export async function readFileBytes(path: string): Promise<Uint8Array> {
  const fs = await nodeFs();
  try {
    return new Uint8Array(await fs.readFile(path));
  } catch (e) {
    throw new Error(`cannot read '${path}': ${(e as Error).message}`);
  }
}

/**
 * Writes to a temporary sibling (`<path>.tmp-<pid>-...`), flushes it, then renames over the target, so readers
 * never see half a file. On any failure the temporary file is removed and the target is left as it was.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string, fs?: FileSystem): Promise<void> {
  const io = fs ?? (await nodeFs());
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    const handle = await io.open(tmp, 'w');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await io.rename(tmp, path);
  } catch (e) {
    await io.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}
