import protobuf from 'protobufjs';

/**
 * ONNX model reading: the protobuf wire format through protobufjs with the subset of onnx.proto (ONNX 1.12,
 * proto2, field numbers as upstream) that describes a graph and its tensors. Fields left out (training info,
 * quantization annotations, ...) are skipped by the decoder; sparse initializers and model-local functions are
 * declared only to refuse them.
 */
const ONNX_PROTO = `
syntax = "proto2";
package onnx;
message AttributeProto {
  optional string name = 1;
  optional string ref_attr_name = 21;
  optional int32 type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional bytes g = 6;
  optional bytes sparse_tensor = 22;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated bytes graphs = 11;
}
message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
}
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  repeated AttributeProto attribute = 5;
}
message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional GraphProto graph = 7;
  repeated bytes functions = 25;
}
message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}
message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  repeated bytes sparse_initializer = 15;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
}
message TensorProto {
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  optional bytes segment = 3;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  optional int32 data_location = 14;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
}
message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
  }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
    bytes sequence_type = 4;
    bytes map_type = 5;
    bytes optional_type = 9;
    bytes sparse_tensor_type = 8;
  }
}
message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
`;

let modelType: protobuf.Type | null = null;
function modelProto(): protobuf.Type {
  modelType ??= protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');
  return modelType;
}

/** The tensor element types this reader turns into numbers (TensorProto.DataType). */
export type OnnxDataType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool';

const DATA_TYPES: Record<number, { name: OnnxDataType; bytes: number } | { unsupported: string }> = {
  1: { name: 'float32', bytes: 4 },
  2: { name: 'uint8', bytes: 1 },
  3: { name: 'int8', bytes: 1 },
  4: { name: 'uint16', bytes: 2 },
  5: { name: 'int16', bytes: 2 },
  6: { name: 'int32', bytes: 4 },
  7: { name: 'int64', bytes: 8 },
  8: { unsupported: 'string' },
  9: { name: 'bool', bytes: 1 },
  10: { name: 'float16', bytes: 2 },
  11: { name: 'float64', bytes: 8 },
  12: { name: 'uint32', bytes: 4 },
  13: { name: 'uint64', bytes: 8 },
  14: { unsupported: 'complex64' },
  15: { unsupported: 'complex128' },
  16: { name: 'bfloat16', bytes: 2 },
};

export const isFloatType = (t: OnnxDataType): boolean =>
  t === 'float32' || t === 'float16' || t === 'bfloat16' || t === 'float64';

/**
 * A host tensor: floating types as Float32Array (float16/bfloat16/float64 converted), integer and bool types as
 * Float64Array (int64/uint64 beyond 2^53 lose precision, which only matters for the 'to the end' sentinels of
 * Slice, where any huge value clamps the same).
 */
export interface OnnxTensor {
  dataType: OnnxDataType;
  dims: number[];
  data: Float32Array | Float64Array;
}

export interface OnnxAttribute {
  name: string;
  /** AttributeProto.AttributeType: 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 6 FLOATS, 7 INTS, 8 STRINGS, ... */
  type: number;
  f?: number;
  i?: number;
  s?: string;
  t?: OnnxTensor;
  floats?: number[];
  ints?: number[];
  strings?: string[];
}

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Map<string, OnnxAttribute>;
}

export interface OnnxValueInfo {
  name: string;
  elemType: OnnxDataType | 'unknown';
  /** Fixed sizes as numbers, symbolic ones by name, unknown ones null; null shape when none was declared. */
  shape: (number | string | null)[] | null;
}

export interface OnnxModel {
  irVersion: number;
  /** domain ('' for the default ai.onnx) -> opset version. */
  opsets: Map<string, number>;
  producer: string;
  graph: {
    name: string;
    nodes: OnnxNode[];
    initializers: Map<string, OnnxTensor>;
    /** Graph inputs that are not initializers: what a caller feeds. */
    inputs: OnnxValueInfo[];
    outputs: OnnxValueInfo[];
  };
}

/** The most elements one tensor may declare (2^31, past what a 2 GB protobuf can hold as raw data). */
const MAX_ELEMENTS = 2 ** 31;

type Long = { toNumber(): number };
const num = (v: number | Long | null | undefined): number => (v == null ? 0 : typeof v === 'number' ? v : v.toNumber());

function float16ToFloat32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const bfloat16ToFloat32 = (b: number): number => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!;

interface RawTensor {
  name?: string;
  dims?: (number | Long)[];
  data_type?: number;
  segment?: Uint8Array;
  float_data?: number[];
  int32_data?: number[];
  string_data?: Uint8Array[];
  int64_data?: (number | Long)[];
  raw_data?: Uint8Array;
  external_data?: { key?: string; value?: string }[];
  data_location?: number;
  double_data?: number[];
  uint64_data?: (number | Long)[];
}

function decodeTensor(raw: RawTensor, where: string): OnnxTensor {
  const what = `${where}${raw.name ? ` '${raw.name}'` : ''}`;
  const code = raw.data_type ?? 0;
  const info = DATA_TYPES[code];
  if (!info) throw new Error(`ONNX: ${what} has unknown data type ${code}`);
  if ('unsupported' in info)
    throw new Error(
      `ONNX: ${what} has data type ${info.unsupported}, which is not supported (numeric and bool tensors only)`,
    );
  if (raw.data_location === 1 || (raw.external_data?.length ?? 0) > 0) {
    throw new Error(
      `ONNX: ${what} keeps its data in an external file; only models with their tensors inside the .onnx file are supported`,
    );
  }
  if (raw.segment && raw.segment.length > 0)
    throw new Error(`ONNX: ${what} is a segment of a split tensor, which is not supported`);
  const dims = (raw.dims ?? []).map(num);
  let count = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0)
      throw new Error(`ONNX: ${what} declares a bad dimension ${d} in [${dims.join(', ')}]`);
    count *= d;
  }
  if (count > MAX_ELEMENTS)
    throw new Error(`ONNX: ${what} declares ${count} elements ([${dims.join(', ')}]), more than ${MAX_ELEMENTS}`);
  const { name: dataType, bytes } = info;
  const float = isFloatType(dataType);
  const out = float ? new Float32Array(count) : new Float64Array(count);
  const rawData = raw.raw_data;
  if (rawData && rawData.length > 0) {
    if (rawData.length !== count * bytes) {
      throw new Error(
        `ONNX: ${what} (${dataType} [${dims.join(', ')}]) needs ${count * bytes} bytes of raw data, the file holds ${rawData.length}: the file is corrupt or truncated`,
      );
    }
    const view = new DataView(rawData.buffer, rawData.byteOffset, rawData.byteLength);
    const read: (i: number) => number = {
      float32: (i: number) => view.getFloat32(4 * i, true),
      float16: (i: number) => float16ToFloat32(view.getUint16(2 * i, true)),
      bfloat16: (i: number) => bfloat16ToFloat32(view.getUint16(2 * i, true)),
      float64: (i: number) => view.getFloat64(8 * i, true),
      int64: (i: number) => Number(view.getBigInt64(8 * i, true)),
      uint64: (i: number) => Number(view.getBigUint64(8 * i, true)),
      int32: (i: number) => view.getInt32(4 * i, true),
      uint32: (i: number) => view.getUint32(4 * i, true),
      int16: (i: number) => view.getInt16(2 * i, true),
      uint16: (i: number) => view.getUint16(2 * i, true),
      int8: (i: number) => view.getInt8(i),
      uint8: (i: number) => view.getUint8(i),
      bool: (i: number) => (view.getUint8(i) ? 1 : 0),
    }[dataType];
    if (dataType === 'float32') {
      // The bulk case (weights): one aligned copy, then a typed view (little-endian hosts).
      const aligned = new Uint8Array(count * 4);
      aligned.set(rawData);
      out.set(new Float32Array(aligned.buffer));
      if (!LITTLE_ENDIAN) for (let i = 0; i < count; i++) out[i] = read(i);
    } else {
      for (let i = 0; i < count; i++) out[i] = read(i);
    }
    return { dataType, dims, data: out };
  }
  // Typed fields (TensorProto's comments say which field holds which type).
  let values: ArrayLike<number> | (number | Long)[] = [];
  let field = '';
  const pick = (name: string, v: ArrayLike<unknown> | undefined) => {
    if (v && v.length > 0) {
      if (field) throw new Error(`ONNX: ${what} has data in both ${field} and ${name}`);
      field = name;
      values = v as ArrayLike<number>;
    }
  };
  pick('float_data', raw.float_data);
  pick('int32_data', raw.int32_data);
  pick('int64_data', raw.int64_data);
  pick('double_data', raw.double_data);
  pick('uint64_data', raw.uint64_data);
  pick('string_data', raw.string_data as unknown as ArrayLike<unknown>);
  const expected: Record<OnnxDataType, string> = {
    float32: 'float_data',
    float16: 'int32_data',
    bfloat16: 'int32_data',
    int32: 'int32_data',
    int16: 'int32_data',
    int8: 'int32_data',
    uint8: 'int32_data',
    uint16: 'int32_data',
    bool: 'int32_data',
    int64: 'int64_data',
    float64: 'double_data',
    uint32: 'uint64_data',
    uint64: 'uint64_data',
  };
  if (field && field !== expected[dataType])
    throw new Error(`ONNX: ${what} is ${dataType} but holds its data in ${field} (expected ${expected[dataType]})`);
  if (values.length !== count) {
    throw new Error(
      `ONNX: ${what} (${dataType} [${dims.join(', ')}]) declares ${count} elements, the file holds ${values.length}: the file is corrupt or truncated`,
    );
  }
  for (let i = 0; i < count; i++) {
    const v = num((values as (number | Long)[])[i]);
    out[i] =
      dataType === 'float16'
        ? float16ToFloat32(v)
        : dataType === 'bfloat16'
          ? bfloat16ToFloat32(v)
          : dataType === 'bool'
            ? v
              ? 1
              : 0
            : v;
  }
  return { dataType, dims, data: out };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface RawAttribute {
  name?: string;
  type?: number;
  f?: number;
  i?: number | Long;
  s?: Uint8Array;
  t?: RawTensor;
  g?: Uint8Array;
  floats?: number[];
  ints?: (number | Long)[];
  strings?: Uint8Array[];
  tensors?: RawTensor[];
  graphs?: Uint8Array[];
  ref_attr_name?: string;
}

const utf8 = new TextDecoder();

function decodeAttribute(a: RawAttribute, node: string): OnnxAttribute {
  const name = a.name ?? '';
  const out: OnnxAttribute = { name, type: a.type ?? 0 };
  switch (out.type) {
    case 1:
      out.f = a.f ?? 0;
      break;
    case 2:
      out.i = num(a.i);
      break;
    case 3:
      out.s = a.s instanceof Uint8Array ? utf8.decode(a.s) : '';
      break;
    case 4:
      out.t = decodeTensor(a.t ?? {}, `attribute '${name}' of node ${node}`);
      break;
    case 6:
      out.floats = [...(a.floats ?? [])];
      break;
    case 7:
      out.ints = (a.ints ?? []).map(num);
      break;
    case 8:
      out.strings = (a.strings ?? []).map((s) => utf8.decode(s));
      break;
    default:
      // Graph, sparse-tensor and type attributes belong to ops this reader's users refuse anyway; keep the type.
      break;
  }
  return out;
}

interface RawValueInfo {
  name?: string;
  type?: {
    tensor_type?: { elem_type?: number; shape?: { dim?: { dim_value?: number | Long; dim_param?: string }[] } };
  };
}

function decodeValueInfo(v: RawValueInfo): OnnxValueInfo {
  const t = v.type?.tensor_type;
  const info = t?.elem_type !== undefined ? DATA_TYPES[t.elem_type] : undefined;
  const elemType = info && 'name' in info ? info.name : 'unknown';
  const shape = t?.shape
    ? (t.shape.dim ?? []).map((d) => (d.dim_param ? d.dim_param : d.dim_value != null ? num(d.dim_value) : null))
    : null;
  return { name: v.name ?? '', elemType, shape };
}

/**
 * Parses an .onnx file (ModelProto). Tensors with raw data are checked against their declared shape and type,
 * typed-field tensors against their element count; external data, sparse initializers, string tensors and
 * model-local functions are refused with the tensor or feature named. A file that is not a protobuf ModelProto,
 * or is cut short, errors as corrupt.
 */
export function readOnnx(bytes: Uint8Array): OnnxModel {
  let m: {
    ir_version?: number | Long;
    opset_import?: { domain?: string; version?: number | Long }[];
    producer_name?: string;
    producer_version?: string;
    graph?: {
      name?: string;
      node?: {
        input?: string[];
        output?: string[];
        name?: string;
        op_type?: string;
        domain?: string;
        attribute?: RawAttribute[];
      }[];
      initializer?: RawTensor[];
      sparse_initializer?: Uint8Array[];
      input?: RawValueInfo[];
      output?: RawValueInfo[];
    };
    functions?: Uint8Array[];
  };
  try {
    m = modelProto().decode(bytes) as unknown as typeof m;
  } catch (e) {
    throw new Error(`ONNX: not a readable ONNX model (corrupt or truncated protobuf): ${(e as Error).message}`);
  }
  const g = m.graph;
  if (!g || !g.node || g.node.length === 0) throw new Error('ONNX: the file holds no graph (is it an ONNX model?)');
  if ((m.functions?.length ?? 0) > 0) throw new Error('ONNX: model-local functions are not supported');
  if ((g.sparse_initializer?.length ?? 0) > 0) throw new Error('ONNX: sparse initializers are not supported');
  const opsets = new Map<string, number>();
  for (const o of m.opset_import ?? []) opsets.set(o.domain === 'ai.onnx' ? '' : (o.domain ?? ''), num(o.version));
  const initializers = new Map<string, OnnxTensor>();
  for (const t of g.initializer ?? []) {
    if (!t.name) throw new Error('ONNX: an initializer has no name');
    initializers.set(t.name, decodeTensor(t, 'initializer'));
  }
  const nodes: OnnxNode[] = g.node.map((n, k) => {
    const name = n.name || `#${k}`;
    const attributes = new Map<string, OnnxAttribute>();
    for (const a of n.attribute ?? []) {
      if (a.ref_attr_name) throw new Error(`ONNX: node ${name} refers to a function attribute, which is not supported`);
      attributes.set(a.name ?? '', decodeAttribute(a, name));
    }
    return {
      name,
      opType: n.op_type ?? '',
      domain: n.domain === 'ai.onnx' ? '' : (n.domain ?? ''),
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attributes,
    };
  });
  return {
    irVersion: num(m.ir_version),
    opsets,
    producer: [m.producer_name, m.producer_version].filter(Boolean).join(' '),
    graph: {
      name: g.name ?? '',
      nodes,
      initializers,
      inputs: (g.input ?? []).map(decodeValueInfo).filter((v) => !initializers.has(v.name)),
      outputs: (g.output ?? []).map(decodeValueInfo),
    },
  };
}
