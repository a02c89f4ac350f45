/**
 * PyTorch `.pth` checkpoints, in either of torch.save's two formats, told apart by their first bytes:
 * - zip (PyTorch >= 1.6): a ZIP archive holding `<archive>/data.pkl` (a pickle, protocol 2) and
 *   `<archive>/data/<key>` (each storage's raw little-endian bytes);
 * - legacy (PyTorch < 1.6, or `_use_new_zipfile_serialization=False`): pickles back to back (magic number,
 *   protocol version, sys_info, the checkpoint, the storage keys), then each storage's element count and bytes.
 * The still older tar format (PyTorch <= 0.3) is refused with a message saying how to re-save it.
 *
 * The pickles are run by a restricted VM: only the opcodes torch.save emits for state dicts (Python 2's strings
 * included), and only the globals that rebuild tensors and ordered dicts. Anything else (os.system, builtins.eval,
 * unknown opcodes) throws before anything is built; nothing is ever executed. Tensors come out contiguous with the
 * dtype rules of safetensors.ts (float types widened to float32, integer types to int32).
 *
 * The result is a flat name -> tensor map: a checkpoint wrapping its weights as
 * `{'state_dict' | 'model' | 'module': {...}, 'epoch': ...}` is unwrapped, nested dicts are joined with '.',
 * and non-tensor values (epochs, hyper-parameters, the state dict's `_metadata`) are dropped.
 */
import { sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  decodeTensor,
  type FloatLoad,
  placeLoaded,
  readFileBytes,
  type HostTensor,
  type TensorLoad,
  type SafetensorsDType,
} from './safetensors.js';
import { crc32 } from './crc32.js';
import { DTYPE_BYTES } from './dtype-bytes.js';
import { Inflate } from 'fflate';

/**
 * `FloatLoad` chooses float16 or float32 for the float tensors (HalfStorage is kept as it is when float16);
 * `host` keeps the loaded tensors in host memory (see `TensorLoad`).
 */
export interface PthOptions extends TensorLoad {
  /** Removed from the start of every key that has it, e.g. 'module.' for checkpoints saved from DataParallel. */
  stripPrefix?: string;
  /**
   * Most bytes decoding may create beyond the file itself (default `PTH_MAX_EXPANDED_BYTES`, 1 GiB): deflated zip
   * entries (checked against their declared size before inflating, and inflating stops at that size) plus the
   * copies strided tensor views need. A decompression bomb is refused before it costs memory; raise this for a
   * genuine re-zipped checkpoint larger than the default.
   */
  maxExpandedBytes?: number;
}

/** Default `PthOptions.maxExpandedBytes`: 1 GiB. torch.save stores entries uncompressed, which costs nothing here. */
export const PTH_MAX_EXPANDED_BYTES = 1024 ** 3;

/** Nested dicts deeper than this are no state dict (and would only serve to exhaust the stack). */
const MAX_DICT_DEPTH = 100;
/** More dict entries than any state dict has (Stable Diffusion's UNet has ~1700). */
const MAX_DICT_ENTRIES = 10_000_000;

/** Counts the bytes decoding creates beyond the file against `PthOptions.maxExpandedBytes`. */
class ExpansionBudget {
  private used = 0;
  constructor(
    readonly limit: number,
    readonly source: string,
  ) {}
  take(bytes: number, what: string): void {
    if (this.used + bytes > this.limit) {
      throw new Error(
        `${this.source}: ${what} would bring the bytes decoded beyond the file to ${this.used + bytes}, over the limit of ${this.limit} ` +
          '(a decompression bomb, or a genuinely large re-zipped checkpoint: raise PthOptions.maxExpandedBytes)',
      );
    }
    this.used += bytes;
  }
}

const ONLY = 'only PyTorch tensor state dicts are accepted';
const ONLY_NUMPY = 'only pickled dicts of numpy arrays are accepted';

// ---------------------------------------------------------------- ZIP reading

interface ZipEntry {
  name: string;
  crc: number;
  method: number;
  flags: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const U32_MAX = 0xffffffff;

/** Reads a little-endian u64 that must fit a JS number (file offsets and sizes). */
function u64(view: DataView, at: number, source: string, what: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${source}: ${what} ${v} is too large`);
  return Number(v);
}

/** Lists the archive's entries from the central directory (ZIP64 aware). */
function readCentralDirectory(bytes: Uint8Array, source: string): Map<string, ZipEntry> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const corrupt = (what: string) => new Error(`${source}: corrupt zip archive: ${what} (file truncated?)`);
  // The end-of-central-directory record is 22 bytes plus a comment of at most 65535 bytes.
  let eocd = -1;
  for (let i = bytes.byteLength - 22; i >= Math.max(0, bytes.byteLength - 22 - 0xffff); i--) {
    if (view.getUint32(i, true) === 0x06054b50 && i + 22 + view.getUint16(i + 20, true) === bytes.byteLength) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw corrupt('no end-of-central-directory record');
  let count = view.getUint16(eocd + 10, true);
  let cdSize = view.getUint32(eocd + 12, true);
  let cdOffset = view.getUint32(eocd + 16, true);
  let cdEnd = eocd;
  if (count === 0xffff || cdSize === U32_MAX || cdOffset === U32_MAX) {
    // ZIP64: a locator just before the record points at the 64-bit end-of-central-directory record.
    const loc = eocd - 20;
    if (loc < 0 || view.getUint32(loc, true) !== 0x07064b50)
      throw corrupt('missing ZIP64 end-of-central-directory locator');
    const rec = u64(view, loc + 8, source, 'zip ZIP64 record offset');
    if (rec + 56 > loc || view.getUint32(rec, true) !== 0x06064b50)
      throw corrupt('bad ZIP64 end-of-central-directory record');
    count = u64(view, rec + 32, source, 'zip entry count');
    cdSize = u64(view, rec + 40, source, 'zip central directory size');
    cdOffset = u64(view, rec + 48, source, 'zip central directory offset');
    cdEnd = rec;
  }
  if (cdOffset + cdSize > cdEnd) throw corrupt(`central directory at ${cdOffset}+${cdSize} runs past byte ${cdEnd}`);
  const entries = new Map<string, ZipEntry>();
  let at = cdOffset;
  const decoder = new TextDecoder();
  for (let n = 0; n < count; n++) {
    if (at + 46 > cdOffset + cdSize || view.getUint32(at, true) !== 0x02014b50)
      throw corrupt(`bad central directory entry ${n}`);
    const nameLen = view.getUint16(at + 28, true);
    const extraLen = view.getUint16(at + 30, true);
    const commentLen = view.getUint16(at + 32, true);
    const next = at + 46 + nameLen + extraLen + commentLen;
    if (next > cdOffset + cdSize) throw corrupt(`central directory entry ${n} runs past the directory`);
    const e: ZipEntry = {
      name: decoder.decode(bytes.subarray(at + 46, at + 46 + nameLen)),
      flags: view.getUint16(at + 8, true),
      crc: view.getUint32(at + 16, true),
      method: view.getUint16(at + 10, true),
      compressedSize: view.getUint32(at + 20, true),
      size: view.getUint32(at + 24, true),
      localOffset: view.getUint32(at + 42, true),
    };
    // ZIP64 extra field (id 1): only the fields saturated in the fixed part are present, in this order.
    for (let x = at + 46 + nameLen; x + 4 <= at + 46 + nameLen + extraLen; ) {
      const id = view.getUint16(x, true);
      const len = view.getUint16(x + 2, true);
      if (id === 1) {
        let p = x + 4;
        const take = (what: string) => {
          if (p + 8 > x + 4 + len) throw corrupt(`short ZIP64 extra field for '${e.name}'`);
          const v = u64(view, p, source, `zip ${what}`);
          p += 8;
          return v;
        };
        if (e.size === U32_MAX) e.size = take('size');
        if (e.compressedSize === U32_MAX) e.compressedSize = take('compressed size');
        if (e.localOffset === U32_MAX) e.localOffset = take('local header offset');
      }
      x += 4 + len;
    }
    entries.set(e.name, e);
    at = next;
  }
  return entries;
}

/** Compressed bytes fed to the inflater at a time: a lying entry stops within one chunk's output past its size. */
const INFLATE_CHUNK = 16 * 1024;

/**
 * Raw deflate (torch.save stores entries uncompressed; re-zipped files may not) with fflate, which runs the same
 * in browsers and Node. Inflating stops once the output passes `size`, the entry's declared size, so an entry
 * that lies about it costs at most one chunk's expansion more.
 */
function inflateRaw(data: Uint8Array, size: number, source: string, name: string): Uint8Array {
  const out = new Uint8Array(size);
  let written = 0;
  const inflater = new Inflate((chunk) => {
    if (written + chunk.length > size) {
      throw new Error(
        `${source}: corrupt zip archive: entry '${name}' inflates past its declared ${size} bytes (a decompression bomb?)`,
      );
    }
    out.set(chunk, written);
    written += chunk.length;
  });
  try {
    for (let at = 0; at < data.length; at += INFLATE_CHUNK) {
      const end = Math.min(data.length, at + INFLATE_CHUNK);
      inflater.push(data.subarray(at, end), end === data.length);
    }
    if (data.length === 0) inflater.push(data, true);
  } catch (e) {
    if (/decompression bomb/.test((e as Error).message)) throw e;
    throw new Error(`${source}: cannot inflate zip entry '${name}' (${(e as Error).message})`);
  }
  return out.subarray(0, written);
}

/** The bytes of one entry, bounds-checked against its local header and checked against its CRC-32. */
function entryBytes(bytes: Uint8Array, e: ZipEntry, source: string, budget: ExpansionBudget): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = e.localOffset;
  if (at + 30 > bytes.byteLength || view.getUint32(at, true) !== 0x04034b50) {
    throw new Error(`${source}: corrupt zip archive: no local header for '${e.name}' at byte ${at} (file truncated?)`);
  }
  if (e.flags & 1) throw new Error(`${source}: zip entry '${e.name}' is encrypted`);
  // The local header's extra field can differ from the central one (torch pads it to align the data).
  const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  if (start + e.compressedSize > bytes.byteLength) {
    throw new Error(
      `${source}: corrupt zip archive: entry '${e.name}' ends past the end of the file (file truncated?)`,
    );
  }
  const raw = bytes.subarray(start, start + e.compressedSize);
  if (e.method !== 0 && e.method !== 8)
    throw new Error(`${source}: zip entry '${e.name}' uses unsupported compression method ${e.method}`);
  if (e.method === 8)
    budget.take(e.size, `inflating zip entry '${e.name}' (declared ${e.size} bytes from ${e.compressedSize})`);
  const out = e.method === 0 ? raw : inflateRaw(raw, e.size, source, e.name);
  if (out.byteLength !== e.size)
    throw new Error(
      `${source}: corrupt zip archive: entry '${e.name}' has ${out.byteLength} bytes, expected ${e.size}`,
    );
  // Cheap next to decoding, and it turns damaged weights into an error instead of silently wrong values.
  if (crc32(out) !== e.crc) throw new Error(`${source}: corrupt zip archive: CRC-32 mismatch in entry '${e.name}'`);
  return out;
}

// ---------------------------------------------------------------- pickle VM

const STORAGE_DTYPES: Record<string, SafetensorsDType> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const ALLOWED_GLOBALS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

/**
 * Globals a numpy-array pickle (detectron2's `.pkl` checkpoints) may name, in numpy 1.x and 2.x spelling, plus
 * `_codecs.encode` and `bytes()`, which protocol-2 pickles written by Python 3 use for bytes. Each is emulated,
 * never imported.
 */
const NUMPY_GLOBALS = new Set([
  ...['numpy.core', 'numpy._core'].flatMap((m) => [
    `${m}.multiarray._reconstruct`,
    `${m}.multiarray.scalar`,
    `${m}.numeric._frombuffer`,
  ]),
  'numpy.ndarray',
  'numpy.dtype',
  '_codecs.encode',
  '__builtin__.bytes',
  'builtins.bytes',
]);

/** numpy dtype codes (`dtype.str` without the byte order) and what they are read as. */
const NUMPY_DTYPES: Record<string, SafetensorsDType> = {
  f4: 'F32',
  f2: 'F16',
  f8: 'F64',
  i8: 'I64',
  i4: 'I32',
  i2: 'I16',
  i1: 'I8',
  u1: 'U8',
  b1: 'BOOL',
};

/** A reference to an allow-listed Python global; only ever compared by name, never called. */
class PyGlobal {
  constructor(readonly name: string) {}
}

class Storage {
  constructor(
    readonly dtype: SafetensorsDType,
    readonly numel: number,
    /** numel x item bytes; in the legacy format filled in after the pickle, where the bytes follow it. */
    public bytes: Uint8Array,
  ) {}
}

/** A persistent id ('storage', storage_type, key, location, numel, ...rest) with its storage type resolved. */
interface StorageId {
  key: string;
  dtype: SafetensorsDType;
  numel: number;
  /** What follows numel: nothing in the zip format, view_metadata in the legacy one. */
  rest: unknown[];
}

interface UnpickleOptions {
  /** Names the pickle in errors: 'data.pkl', 'the pickled checkpoint'. */
  label: string;
  /** The persistent id's expected form, for the error when another arrives. */
  storageIdForm: string;
  storageIdLength: number;
  /** Supplies the storage behind a persistent id; caching by key is its business. */
  storage: (id: StorageId) => Storage;
  /**
   * A plain pickle of numpy arrays (detectron2): the numpy globals, bytes opcodes, and Python 2 strings read as
   * latin-1, as `pickle.load(f, encoding='latin1')` does (detectron2's own loader), rather than as UTF-8.
   */
  numpy?: boolean;
}

/** A tensor view as pickled: decoded lazily so errors can name the key. */
class TensorRef {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

/** numpy.dtype(code, align, copy) as unpickled; BUILD then supplies the byte order. */
class NumpyDType {
  byteOrder = '|';
  constructor(readonly code: string) {}
}

/** `_reconstruct(ndarray, (0,), b'b')`: an empty array that BUILD (version, shape, dtype, fortran, data) fills. */
class NumpyArray {
  ref: TensorRef | null = null;
}

/** A pickled tuple (kept apart from lists only for clearer error messages). */
class PyTuple {
  constructor(readonly items: unknown[]) {}
}

type PyDict = Map<unknown, unknown>;

function describe(v: unknown): string {
  if (v instanceof PyGlobal) return v.name;
  if (v instanceof Map) return 'dict';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof NumpyArray) return 'numpy array';
  if (v instanceof NumpyDType) return `numpy dtype '${v.code}'`;
  if (v instanceof PyTuple) return 'tuple';
  if (Array.isArray(v)) return 'list';
  return v === null ? 'None' : typeof v;
}

/** latin-1 text to bytes (how numpy reads a Python 2 str array buffer); code points above 255 are an error. */
function encodeLatin1(text: string, where: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 255) throw new Error(`${where}: latin1 text holds code point ${c} at ${i}, which is not a byte`);
    out[i] = c;
  }
  return out;
}

/** Bytes to latin-1 text in chunks (String.fromCharCode(...big) would overflow the call stack). */
function bytesToLatin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

const OPCODE_NAMES: Record<number, string> = {
  0x69: 'INST',
  0x6f: 'OBJ',
  0x92: 'NEWOBJ_EX',
  0x50: 'PERSID',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
};

/**
 * Runs one pickle from the start of `pkl` up to its STOP opcode and returns the value and the number of bytes
 * it took (the legacy format is several pickles back to back; trailing bytes are the caller's business).
 * Tuples arrive as PyTuple, dicts as Map, tensors as TensorRef, storages from `options.storage`.
 */
function unpickle(pkl: Uint8Array, source: string, options: UnpickleOptions): { value: unknown; end: number } {
  const view = new DataView(pkl.buffer, pkl.byteOffset, pkl.byteLength);
  const decoder = new TextDecoder();
  const { label } = options;
  const where = `${source}: ${label}`;
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;

  const need = (n: number) => {
    if (pos + n > pkl.byteLength)
      throw new Error(`${where} ends unexpectedly at byte ${pkl.byteLength} (file truncated?)`);
    const at = pos;
    pos += n;
    return at;
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw new Error(`${where}: pickle stack underflow at byte ${pos}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new Error(`${where}: pickle stack underflow at byte ${pos}`);
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) throw new Error(`${where}: pickle MARK missing at byte ${pos}`);
    stack = prev;
    return items;
  };
  const line = (): string => {
    const end = pkl.indexOf(0x0a, pos);
    if (end < 0) throw new Error(`${where} ends unexpectedly inside a GLOBAL (file truncated?)`);
    const s = decoder.decode(pkl.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const str = (n: number) => decoder.decode(pkl.subarray(need(n), pos));
  const latin1 = (n: number) => String.fromCharCode(...pkl.subarray(need(n), pos));
  const bytesOf = (n: number) => pkl.slice(need(n), pos);
  const only = options.numpy ? ONLY_NUMPY : ONLY;
  const global = (module: string, name: string): PyGlobal => {
    const full = `${module}.${name}`;
    if (!(options.numpy ? NUMPY_GLOBALS : ALLOWED_GLOBALS).has(full)) {
      throw new Error(`${source}: pickle references global '${full}', which is not allowed; ${only}`);
    }
    return new PyGlobal(full);
  };
  const int = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v))
      throw new Error(`${where}: expected an integer ${what}, got ${describe(v)}`);
    return v;
  };
  const ints = (v: unknown, what: string): number[] => {
    if (!(v instanceof PyTuple)) throw new Error(`${where}: expected a tuple ${what}, got ${describe(v)}`);
    return v.items.map((x) => int(x, `in ${what}`));
  };
  const setItems = (dict: unknown, items: unknown[]) => {
    if (!(dict instanceof Map)) throw new Error(`${where}: SETITEM(S) on a ${describe(dict)}, expected a dict`);
    if (items.length % 2) throw new Error(`${where}: SETITEMS with an odd number of items`);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
  };
  const append = (list: unknown, items: unknown[]) => {
    if (!Array.isArray(list)) throw new Error(`${where}: APPEND(S) on a ${describe(list)}, expected a list`);
    // One by one: spreading a long APPENDS into push() would overflow the call stack.
    for (const item of items) list.push(item);
  };

  /** A numpy array's bytes (bytes, or a Python 2 str read as latin-1) as a tensor view of `shape`. */
  const numpyTensor = (
    what: string,
    dtypeObj: unknown,
    shapeObj: unknown,
    data: unknown,
    fortran: boolean,
  ): TensorRef => {
    if (!(dtypeObj instanceof NumpyDType))
      throw new Error(`${where}: ${what} has dtype ${describe(dtypeObj)}, expected a numpy dtype; ${only}`);
    const dtype = NUMPY_DTYPES[dtypeObj.code];
    if (!dtype)
      throw new Error(
        `${where}: ${what} has numpy dtype '${dtypeObj.code}'; only ${Object.keys(NUMPY_DTYPES).join(', ')} arrays are read`,
      );
    if (dtypeObj.byteOrder === '>')
      throw new Error(`${where}: ${what} is big-endian ('>${dtypeObj.code}'); only little-endian arrays are read`);
    let raw: Uint8Array;
    if (data instanceof Uint8Array) raw = data;
    else if (typeof data === 'string') raw = encodeLatin1(data, where);
    else
      throw new Error(
        `${where}: ${what} holds its data as a ${describe(data)}, expected bytes (object arrays are not read); ${only}`,
      );
    const shape = ints(shapeObj, `${what} shape`);
    if (shape.some((d) => d < 0)) throw new Error(`${where}: ${what} has a negative dimension in shape [${shape}]`);
    const n = sizeOf(shape);
    const item = DTYPE_BYTES[dtype];
    if (raw.byteLength !== n * item) {
      throw new Error(
        `${where}: ${what} of shape [${shape}] and dtype '${dtypeObj.code}' needs ${n * item} bytes, the pickle holds ${raw.byteLength}`,
      );
    }
    // Row-major strides, or column-major ones for a Fortran-ordered array (materialize copies it row-major).
    const stride = new Array<number>(shape.length);
    let s = 1;
    for (let k = 0; k < shape.length; k++) {
      const d = fortran ? k : shape.length - 1 - k;
      stride[d] = s;
      s *= shape[d]!;
    }
    return new TensorRef(new Storage(dtype, n, raw), 0, shape, stride);
  };

  /** Applies an allow-listed callable (REDUCE / NEWOBJ). */
  const call = (fn: unknown, argsObj: unknown): unknown => {
    if (!(fn instanceof PyGlobal)) throw new Error(`${where}: cannot call a ${describe(fn)}; ${only}`);
    if (!(argsObj instanceof PyTuple))
      throw new Error(`${where}: ${fn.name} called with a ${describe(argsObj)}, expected a tuple`);
    const args = argsObj.items;
    const numpyName = fn.name.replace(/^numpy\._core\./, 'numpy.core.');
    switch (numpyName) {
      case '_codecs.encode': {
        // How protocol 2 spells bytes under Python 3: _codecs.encode(text, 'latin1').
        const [text, encoding] = args;
        if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
          throw new Error(
            `${where}: _codecs.encode(${describe(text)}, ${JSON.stringify(encoding)}) is not supported; only latin1 bytes are read`,
          );
        }
        return encodeLatin1(text, where);
      }
      case '__builtin__.bytes':
      case 'builtins.bytes':
        // Protocol 2 spells b'' as bytes(); nothing else is built this way.
        if (args.length !== 0) throw new Error(`${where}: ${fn.name} with arguments is not supported; ${only}`);
        return new Uint8Array(0);
      case 'numpy.dtype': {
        const [code] = args;
        if (typeof code !== 'string')
          throw new Error(`${where}: numpy.dtype(${describe(code)}) is not supported; ${only}`);
        return new NumpyDType(code);
      }
      case 'numpy.core.multiarray._reconstruct': {
        const [cls] = args;
        if (!(cls instanceof PyGlobal) || cls.name !== 'numpy.ndarray') {
          throw new Error(`${where}: _reconstruct of ${describe(cls)} is not supported (only numpy.ndarray); ${only}`);
        }
        return new NumpyArray();
      }
      case 'numpy.core.numeric._frombuffer': {
        // Protocol 5: _frombuffer(buffer, dtype, shape, order) with the buffer in-band.
        const [buf, dtype, shape, order] = args;
        return numpyTensor('numpy array', dtype, shape, buf, order === 'F');
      }
      case 'numpy.core.multiarray.scalar': {
        // A numpy scalar (np.int64(3), np.float32(0.5)): a 0-d tensor.
        const [dtype, data] = args;
        return numpyTensor('numpy scalar', dtype, new PyTuple([]), data, false);
      }
    }
    switch (fn.name) {
      case 'collections.OrderedDict': {
        const d: PyDict = new Map();
        // OrderedDict(iterable of pairs) is legal Python; torch.save only emits OrderedDict() under Python 3,
        // Python 2 pickled OrderedDict([[key, value], ...]).
        if (args.length > 0) {
          if (!Array.isArray(args[0])) throw new Error(`${where}: OrderedDict(${describe(args[0])}) is not supported`);
          for (const pair of args[0]) {
            const kv = pair instanceof PyTuple ? pair.items : pair;
            if (!Array.isArray(kv) || kv.length !== 2) throw new Error(`${where}: OrderedDict items must be pairs`);
            d.set(kv[0], kv[1]);
          }
        }
        return d;
      }
      case 'torch._utils._rebuild_tensor':
      case 'torch._utils._rebuild_tensor_v2': {
        // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
        const [st, offset, size, stride] = args;
        if (!(st instanceof Storage))
          throw new Error(`${where}: ${fn.name} expects a storage first, got ${describe(st)}`);
        const shape = ints(size, 'size');
        const strides = ints(stride, 'stride');
        if (strides.length !== shape.length)
          throw new Error(`${where}: tensor size ${shape} and stride ${strides} differ in rank`);
        return new TensorRef(st, int(offset, 'storage offset'), shape, strides);
      }
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        // nn.Parameter(data, requires_grad, hooks[, state]): the data is all we keep.
        if (!(args[0] instanceof TensorRef))
          throw new Error(`${where}: ${fn.name} expects a tensor, got ${describe(args[0])}`);
        return args[0];
      default:
        throw new Error(`${where}: ${fn.name} cannot be called; ${only}`);
    }
  };

  /** BINPERSID ('storage', storage_type, key, location, numel, ...): the storage is the caller's to supply. */
  const persistentLoad = (pid: unknown): Storage => {
    const t = pid instanceof PyTuple ? pid.items : [];
    const [kind, type, key, , numelRaw, ...rest] = t;
    if (
      t.length !== options.storageIdLength ||
      kind !== 'storage' ||
      !(type instanceof PyGlobal) ||
      typeof key !== 'string'
    ) {
      throw new Error(`${where}: unsupported persistent id (expected ${options.storageIdForm}); ${only}`);
    }
    const dtype = STORAGE_DTYPES[type.name.slice('torch.'.length)];
    if (!type.name.startsWith('torch.') || !dtype)
      throw new Error(`${where}: '${type.name}' is not a storage type; ${only}`);
    return options.storage({ key, dtype, numel: int(numelRaw, 'storage size'), rest });
  };

  for (;;) {
    const op = pkl[need(1)]!;
    switch (op) {
      case 0x80: // PROTO
        need(1);
        break;
      case 0x95: // FRAME: a length hint only
        need(8);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x74: {
        // TUPLE (popMark swaps `stack`, so pop before pushing)
        const items = popMark();
        stack.push(new PyTuple(items));
        break;
      }
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x58: // BINUNICODE
        stack.push(str(view.getUint32(need(4), true)));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(pkl[need(1)]!));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(str(u64(view, need(8), where, 'string length')));
        break;
      case 0x55: // SHORT_BINSTRING: a Python 2 str, read as UTF-8 as torch.load does (latin-1 for numpy pickles)
        stack.push(options.numpy ? latin1(pkl[need(1)]!) : str(pkl[need(1)]!));
        break;
      case 0x54: {
        // BINSTRING (Python 2 str, signed 4-byte length)
        const n = view.getInt32(need(4), true);
        if (n < 0) throw new Error(`${where}: negative string length at byte ${pos - 5}`);
        stack.push(options.numpy ? bytesToLatin1(bytesOf(n)) : str(n));
        break;
      }
      case 0x43: // SHORT_BINBYTES
      case 0x42: // BINBYTES
      case 0x8e: // BINBYTES8
      case 0x96: {
        // BYTEARRAY8 (protocol 5, an in-band writable buffer)
        if (!options.numpy)
          throw new Error(
            `${source}: unsupported pickle opcode 0x${op.toString(16)} (bytes) at byte ${pos - 1} of ${label}; ${only}`,
          );
        const n =
          op === 0x43
            ? pkl[need(1)]!
            : op === 0x42
              ? view.getUint32(need(4), true)
              : u64(view, need(8), where, 'bytes length');
        stack.push(bytesOf(n));
        break;
      }
      case 0x4a: // BININT
        stack.push(view.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        stack.push(pkl[need(1)]!);
        break;
      case 0x4d: // BININT2
        stack.push(view.getUint16(need(2), true));
        break;
      case 0x8a: {
        // LONG1: n little-endian two's-complement bytes
        const n = pkl[need(1)]!;
        const at = need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(pkl[at + i]!);
        if (n > 0 && pkl[at + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        const small = v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER);
        stack.push(small ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        stack.push(view.getFloat64(need(8), false));
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x71: // BINPUT
        memo.set(pkl[need(1)]!, top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(view.getUint32(need(4), true), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const idx = op === 0x68 ? pkl[need(1)]! : view.getUint32(need(4), true);
        if (!memo.has(idx)) throw new Error(`${where}: memo entry ${idx} read before it was written`);
        stack.push(memo.get(idx));
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x63: {
        // GLOBAL 'module\nname\n'
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          throw new Error(`${where}: STACK_GLOBAL needs two strings`);
        stack.push(global(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args); only OrderedDict makes sense here
        const args = pop();
        const cls = pop();
        if (!(cls instanceof PyGlobal) || cls.name !== 'collections.OrderedDict') {
          throw new Error(`${where}: NEWOBJ of ${describe(cls)} is not supported; ${only}`);
        }
        stack.push(call(cls, args));
        break;
      }
      case 0x62: {
        // BUILD: a state dict's attributes (its `_metadata`) are not weights, so they are dropped.
        const state = pop();
        const target = top();
        if (options.numpy && target instanceof NumpyDType) {
          // (version, byte order, subarray, names, fields, elsize, alignment, flags)
          const order = state instanceof PyTuple ? state.items[1] : undefined;
          if (typeof order !== 'string')
            throw new Error(`${where}: numpy dtype '${target.code}' with state ${describe(state)}; ${only}`);
          target.byteOrder = order;
          break;
        }
        if (options.numpy && target instanceof NumpyArray) {
          // (version, shape, dtype, is_fortran, data); pickles of numpy < 1.? leave out the version.
          const items = state instanceof PyTuple ? state.items : [];
          const s = items.length === 5 ? items.slice(1) : items;
          if (s.length !== 4 || target.ref)
            throw new Error(`${where}: numpy array state ${describe(state)} of ${items.length} items; ${only}`);
          target.ref = numpyTensor('numpy array', s[1], s[0], s[3], s[2] === true);
          break;
        }
        if (!(target instanceof Map))
          throw new Error(
            `${where}: BUILD on a ${describe(target)} (state ${describe(state)}) is not supported; ${only}`,
          );
        break;
      }
      case 0x51: // BINPERSID
        if (options.numpy)
          throw new Error(
            `${where}: a persistent id (PyTorch storage) at byte ${pos - 1}: a torch.save file, not a numpy pickle; read it with readPth`,
          );
        stack.push(persistentLoad(pop()));
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length)
          throw new Error(`${where}: pickle stopped with ${stack.length} values on the stack`);
        return { value: stack[0], end: pos };
      default: {
        const name = OPCODE_NAMES[op] ?? (op >= 0x20 && op < 0x7f ? `'${String.fromCharCode(op)}'` : 'unknown');
        throw new Error(
          `${source}: unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} (${name}) at byte ${pos - 1} of ${label}; ${only}`,
        );
      }
    }
  }
}

// ---------------------------------------------------------------- the zip format (PyTorch >= 1.6)

/** Runs `<archive>/data.pkl`; persistent ids ('storage', type, key, location, numel) name `<archive>/data/<key>`. */
function readZipCheckpoint(bytes: Uint8Array, source: string, budget: ExpansionBudget): unknown {
  const entries = readCentralDirectory(bytes, source);
  const pklEntry = [...entries.values()].find((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (!pklEntry)
    throw new Error(`${source}: zip archive has no <archive>/data.pkl, so it is not a torch.save checkpoint`);
  const prefix = pklEntry.name.slice(0, -'data.pkl'.length);
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(entryBytes(bytes, byteorder, source, budget)).trim();
    if (order !== 'little')
      throw new Error(`${source}: storages are '${order}'-endian; only little-endian checkpoints are supported`);
  }
  const storages = new Map<string, Storage>();
  return unpickle(entryBytes(bytes, pklEntry, source, budget), source, {
    label: 'data.pkl',
    storageIdForm: "('storage', type, key, location, numel)",
    storageIdLength: 5,
    storage: ({ key, dtype, numel }) => {
      const cached = storages.get(key);
      if (cached) return cached;
      const e = entries.get(`${prefix}data/${key}`);
      if (!e)
        throw new Error(`${source}: storage '${key}' is missing from the archive (expected ${prefix}data/${key})`);
      const data = entryBytes(bytes, e, source, budget);
      if (data.byteLength < numel * DTYPE_BYTES[dtype]) {
        throw new Error(
          `${source}: storage data/${key} has ${data.byteLength} bytes, expected ${numel} x ${dtype} = ${numel * DTYPE_BYTES[dtype]}`,
        );
      }
      const s = new Storage(dtype, numel, data);
      storages.set(key, s);
      return s;
    },
  }).value;
}

// ---------------------------------------------------------------- the legacy format (PyTorch < 1.6)

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/**
 * torch.save's `_legacy_save` layout: five pickles back to back (the magic number, the protocol version 1001,
 * sys_info, the checkpoint, the list of storage keys), then for each key in that list an int64 element count and
 * the storage's raw little-endian bytes. Persistent ids are ('storage', type, root_key, location, numel,
 * view_metadata), where view_metadata is None or (view_key, offset, size): a window into the root storage.
 */
function readLegacyCheckpoint(bytes: Uint8Array, source: string): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const truncated = (what: string) =>
    new Error(`${source}: legacy torch.save file ends at byte ${bytes.byteLength} ${what} (file truncated?)`);
  let at = 0;
  const next = (label: string, storage: UnpickleOptions['storage']): unknown => {
    if (at >= bytes.byteLength) throw truncated(`before ${label}`);
    const { value, end } = unpickle(bytes.subarray(at), source, {
      label,
      storageIdForm: "('storage', type, root_key, location, numel, view_metadata)",
      storageIdLength: 6,
      storage,
    });
    at += end;
    return value;
  };
  const noStorage = (): Storage => {
    throw new Error(`${source}: a storage outside the pickled checkpoint of a legacy torch.save file; ${ONLY}`);
  };

  if (next('the magic number', noStorage) !== LEGACY_MAGIC) {
    throw new Error(
      `${source}: starts with a pickle that is not torch.save's magic number, so it is not a torch.save checkpoint`,
    );
  }
  const protocol = next('the protocol version', noStorage);
  if (protocol !== LEGACY_PROTOCOL)
    throw new Error(`${source}: legacy torch.save protocol version ${String(protocol)}, expected ${LEGACY_PROTOCOL}`);
  const sysInfo = next('sys_info', noStorage);
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) {
    throw new Error(
      `${source}: saved on a big-endian machine (sys_info little_endian=False); only little-endian checkpoints are supported`,
    );
  }

  // Storages are created empty while the checkpoint is unpickled; their bytes come after the key list.
  const roots = new Map<string, Storage>();
  const views = new Map<string, { storage: Storage; root: Storage; offset: number }>();
  const root = next('the pickled checkpoint', ({ key, dtype, numel, rest: [viewMetadata] }) => {
    let r = roots.get(key);
    if (!r) roots.set(key, (r = new Storage(dtype, numel, new Uint8Array(0))));
    else if (r.dtype !== dtype || r.numel !== numel) {
      throw new Error(`${source}: storage '${key}' is used as ${r.numel} x ${r.dtype} and as ${numel} x ${dtype}`);
    }
    if (viewMetadata === null) return r;
    const [viewKey, offset, size] = viewMetadata instanceof PyTuple ? viewMetadata.items : [];
    if (typeof viewKey !== 'string' || !Number.isInteger(offset) || !Number.isInteger(size)) {
      throw new Error(
        `${source}: storage '${key}' has view_metadata ${describe(viewMetadata)}, expected None or (view_key, offset, size)`,
      );
    }
    const o = offset as number;
    const n = size as number;
    if (o < 0 || n < 0 || o + n > numel)
      throw new Error(
        `${source}: storage view '${viewKey}' (${o}+${n}) lies outside storage '${key}' of ${numel} elements`,
      );
    let v = views.get(viewKey);
    if (!v) views.set(viewKey, (v = { storage: new Storage(dtype, n, new Uint8Array(0)), root: r, offset: o }));
    else if (v.root !== r || v.offset !== o || v.storage.numel !== n)
      throw new Error(`${source}: storage view '${viewKey}' is described two ways`);
    return v.storage;
  });
  const keys = next('the storage key list', noStorage);
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string')) {
    throw new Error(`${source}: legacy torch.save file has a ${describe(keys)} where the list of storage keys belongs`);
  }

  const filled = new Set<string>();
  for (const key of keys as string[]) {
    const s = roots.get(key);
    if (!s)
      throw new Error(
        `${source}: storage '${key}' is in the file but no tensor uses it, so its element size is unknown`,
      );
    if (filled.has(key)) throw new Error(`${source}: storage '${key}' is listed twice`);
    if (at + 8 > bytes.byteLength) throw truncated(`before storage '${key}'`);
    const count = u64(view, at, source, `storage '${key}' element count`);
    if (count !== s.numel)
      throw new Error(`${source}: storage '${key}' holds ${count} elements, but the checkpoint says ${s.numel}`);
    const end = at + 8 + count * DTYPE_BYTES[s.dtype];
    if (end > bytes.byteLength)
      throw truncated(`inside storage '${key}' (${count} x ${s.dtype} ending at byte ${end})`);
    s.bytes = bytes.subarray(at + 8, end);
    filled.add(key);
    at = end;
  }
  for (const key of roots.keys()) {
    if (!filled.has(key))
      throw new Error(`${source}: storage '${key}' is used by the checkpoint but its bytes are not in the file`);
  }
  for (const v of views.values()) {
    const item = DTYPE_BYTES[v.root.dtype];
    v.storage.bytes = v.root.bytes.subarray(v.offset * item, (v.offset + v.storage.numel) * item);
  }
  return root;
}

// ---------------------------------------------------------------- tensors

/** Copies a (possibly strided, offset) view into contiguous bytes, then decodes them as safetensors does. */
function materialize(name: string, t: TensorRef, source: string, budget: ExpansionBudget, load: FloatLoad): HostTensor {
  const { storage, shape, stride, offset } = t;
  const n = sizeOf(shape);
  const item = DTYPE_BYTES[storage.dtype];
  if (shape.some((d) => d < 0) || stride.some((s) => s < 0) || offset < 0) {
    throw new Error(`${source}: tensor '${name}' has a negative size, stride or offset`);
  }
  if (!Number.isSafeInteger(n) || !Number.isSafeInteger(n * item))
    throw new Error(`${source}: tensor '${name}' has size [${shape}], too many elements`);
  if (n > 0) {
    const last = offset + shape.reduce((acc, d, i) => acc + (d - 1) * stride[i]!, 0);
    if (last >= storage.numel) {
      throw new Error(
        `${source}: tensor '${name}' (offset ${offset}, size [${shape}], stride [${stride}]) reads past its storage of ${storage.numel} elements`,
      );
    }
  }
  let bytes: Uint8Array;
  const contiguous = shape.every((d, i) => d === 1 || stride[i] === shape.slice(i + 1).reduce((a, b) => a * b, 1));
  if (contiguous || n === 0) {
    bytes = storage.bytes.subarray(offset * item, (offset + n) * item);
  } else {
    // Walk the view row by row; rows are copied whole when the last dimension is dense. A view can be far
    // larger than its storage (stride 0), so the copy counts against the budget.
    budget.take(n * item, `copying strided tensor '${name}' (size [${shape}], stride [${stride}])`);
    bytes = new Uint8Array(n * item);
    const rank = shape.length;
    const rowLen = shape[rank - 1]!;
    const rowDense = stride[rank - 1] === 1;
    const idx = new Array<number>(rank - 1).fill(0);
    for (let out = 0; out < n; out += rowLen) {
      let src = offset;
      for (let d = 0; d < rank - 1; d++) src += idx[d]! * stride[d]!;
      if (rowDense) {
        bytes.set(storage.bytes.subarray(src * item, (src + rowLen) * item), out * item);
      } else {
        for (let j = 0; j < rowLen; j++) {
          const s = (src + j * stride[rank - 1]!) * item;
          bytes.set(storage.bytes.subarray(s, s + item), (out + j) * item);
        }
      }
      for (let d = rank - 2; d >= 0; d--) {
        if (++idx[d]! < shape[d]!) break;
        idx[d] = 0;
      }
    }
  }
  try {
    return decodeTensor(name, { dtype: storage.dtype, shape, offsets: [0, bytes.byteLength] }, bytes, load);
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message.replace(/^safetensors: /, '')}`);
  }
}

/** Picks the state dict out of a checkpoint and flattens it to dotted names. */
function flatten(
  root: unknown,
  source: string,
  options: PthOptions,
  budget: ExpansionBudget,
  only = ONLY,
): Map<string, HostTensor> {
  // A numpy array is its tensor once BUILD has filled it; one never filled is no array.
  const tensorOf = (v: unknown): TensorRef | null => {
    if (v instanceof NumpyArray) {
      if (!v.ref) throw new Error(`${source}: a numpy array was reconstructed but never given its data; ${only}`);
      return v.ref;
    }
    return v instanceof TensorRef ? v : null;
  };
  if (!(root instanceof Map))
    throw new Error(`${source}: the checkpoint holds a ${describe(root)}, expected a dict of tensors; ${only}`);
  let dict: PyDict = root;
  // A training checkpoint wraps the weights: {'epoch': 3, 'state_dict': {...}, 'optimizer': {...}}.
  if (![...root.values()].some((v) => tensorOf(v) !== null)) {
    const wrapped = ['state_dict', 'model', 'module'].map((k) => root.get(k)).find((v) => v instanceof Map);
    if (wrapped) dict = wrapped as PyDict;
  }
  const out = new Map<string, HostTensor>();
  const open = new Set<PyDict>();
  const seen = new Set<TensorRef>();
  let visits = 0;
  const walk = (d: PyDict, prefix: string) => {
    // Shared dicts are legal pickles, but sharing nested k deep names 2^k entries: bounded here.
    visits += d.size;
    if (visits > MAX_DICT_ENTRIES)
      throw new Error(`${source}: the checkpoint's dicts name more than ${MAX_DICT_ENTRIES} entries; ${only}`);
    if (open.has(d)) throw new Error(`${source}: dict '${prefix.slice(0, -1)}' contains itself; ${only}`);
    if (open.size >= MAX_DICT_DEPTH)
      throw new Error(
        `${source}: dicts nested more than ${MAX_DICT_DEPTH} deep (at '${prefix.slice(0, 200)}...'); ${only}`,
      );
    open.add(d);
    for (const [k, v] of d) {
      const name = prefix + String(k);
      const t = tensorOf(v);
      if (v instanceof Map) walk(v, `${name}.`);
      else if (t) {
        const p = options.stripPrefix;
        const key = p && name.startsWith(p) ? name.slice(p.length) : name;
        if (out.has(key))
          throw new Error(`${source}: two tensors are named '${key}' after flattening/prefix stripping`);
        // A tensor named twice is decoded twice: the second copy is no part of the file's size.
        if (seen.has(t))
          budget.take(sizeOf(t.shape) * 4, `decoding tensor '${name}' again (it is named more than once)`);
        seen.add(t);
        out.set(key, materialize(name, t, source, budget, options));
      }
    }
    open.delete(d);
  };
  walk(dict, '');
  return out;
}

/** The ZIP local-file-header magic 'PK\x03\x04' at byte 0. */
const isZip = (b: Uint8Array) => b.byteLength >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04;
/** A pickle's PROTO opcode (protocol >= 2), as the legacy format's first pickle, the magic number, starts. */
const isPickle = (b: Uint8Array) => b.byteLength >= 1 && b[0] === 0x80;
/** The POSIX tar magic 'ustar' at byte 257 of the first header, as PyTorch <= 0.3's tarfile writes it. */
const isTar = (b: Uint8Array) => b.byteLength >= 262 && String.fromCharCode(...b.subarray(257, 262)) === 'ustar';

/**
 * Parses a torch.save checkpoint held in memory into flat, contiguous host tensors: the zip format or the legacy
 * one, told apart by their first bytes. See the file comment for how the state dict is found;
 * `options.stripPrefix` removes e.g. 'module.' from every key.
 */
export function readPth(bytes: Uint8Array, source = 'pth', options: PthOptions = {}): Map<string, HostTensor> {
  const limit = options.maxExpandedBytes ?? PTH_MAX_EXPANDED_BYTES;
  if (!(limit >= 0)) throw new Error(`${source}: maxExpandedBytes must be a number >= 0, got ${limit}`);
  const budget = new ExpansionBudget(limit, source);
  let root: unknown;
  if (isZip(bytes)) root = readZipCheckpoint(bytes, source, budget);
  else if (isPickle(bytes)) root = readLegacyCheckpoint(bytes, source);
  else if (isTar(bytes)) {
    throw new Error(
      `${source}: a tar archive, torch.save's format of PyTorch <= 0.3, which is not supported; ` +
        're-save it with a current PyTorch: torch.save(torch.load(f), f2)',
    );
  } else {
    throw new Error(
      `${source}: not a torch.save checkpoint (neither a zip archive nor a legacy torch.save pickle stream)`,
    );
  }
  return flatten(root, source, options, budget);
}

/** Reads a .pth checkpoint from disk (Node) onto the device (or into host memory with `options.host`). */
export async function loadPth(path: string, options: PthOptions = {}): Promise<Map<string, Tensor>> {
  return placeLoaded(readPth(await readFileBytes(path), path, options), options);
}

/**
 * Parses a plain pickle of numpy arrays held in memory, as detectron2 releases its weights (`model_final_*.pkl`:
 * `{'model': {name: ndarray}, '__author__': ...}`, pickled by Python 3 with any protocol 2-5, or by Python 2 as
 * Detectron's converted ImageNet models are), into flat, contiguous host tensors with the dtype rules of
 * `readPth`. The same restricted machine as `readPth` runs it, allowing only numpy's array, dtype and scalar
 * reconstruction (emulated, never imported) besides dicts, lists and tuples: any other global, object arrays and
 * big-endian data are refused, and nothing is ever executed. A `'model'` dict entry is the state dict (otherwise it
 * is found as in `readPth`); `options.stripPrefix` removes a prefix from every key.
 */
export function readPkl(bytes: Uint8Array, source = 'pkl', options: PthOptions = {}): Map<string, HostTensor> {
  const limit = options.maxExpandedBytes ?? PTH_MAX_EXPANDED_BYTES;
  if (!(limit >= 0)) throw new Error(`${source}: maxExpandedBytes must be a number >= 0, got ${limit}`);
  if (!isPickle(bytes)) {
    throw new Error(
      `${source}: not a pickle of protocol 2 or later (first byte ${bytes.byteLength ? `0x${bytes[0]!.toString(16)}` : 'missing'}), so not a detectron2 .pkl checkpoint`,
    );
  }
  const noStorage = (): Storage => {
    throw new Error(`${source}: a PyTorch storage in a numpy pickle`);
  };
  const { value, end } = unpickle(bytes, source, {
    label: 'the pickle',
    storageIdForm: 'none',
    storageIdLength: -1,
    storage: noStorage,
    numpy: true,
  });
  if (end !== bytes.byteLength)
    throw new Error(`${source}: ${bytes.byteLength - end} bytes follow the pickle's STOP; ${ONLY_NUMPY}`);
  // detectron2 keeps numpy scalars ('iteration') beside 'model', so the wrapper is recognised by name.
  const model = value instanceof Map ? value.get('model') : undefined;
  return flatten(model instanceof Map ? model : value, source, options, new ExpansionBudget(limit, source), ONLY_NUMPY);
}

/**
 * Reads a detectron2-style `.pkl` (a pickle of numpy arrays, see `readPkl`) from disk (Node) onto the device (or
 * into host memory with `options.host`).
 */
export async function loadPkl(path: string, options: PthOptions = {}): Promise<Map<string, Tensor>> {
  return placeLoaded(readPkl(await readFileBytes(path), path, options), options);
}
