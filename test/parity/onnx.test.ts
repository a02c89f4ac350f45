import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { ONNX_SUPPORTED_OPS, OnnxGraph, readOnnx } from '@leffa-webgpu/models';
import * as ort from 'onnxruntime-node';
import protobuf from 'protobufjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectClose, normalisedError } from '../helpers/compare.js';
import { ModelGolden } from '../helpers/model-golden.js';

const out = (name: string) => fileURLToPath(new URL(`../golden/out/${name}`, import.meta.url));
let g: ModelGolden;

beforeAll(async () => {
  await T.init();
  g = new ModelGolden('onnx');
});

/** ONNX Runtime's outputs for one float32 feed, in graph-output order. */
async function runOrt(path: string, input: T.HostTensor): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(path);
  const feeds = {
    [session.inputNames[0]!]: new ort.Tensor('float32', Float32Array.from(input.data), [...input.shape]),
  };
  const res = await session.run(feeds);
  const outs = session.outputNames.map((n) => res[n]!.data as Float32Array);
  await session.release();
  return outs;
}

async function replay(file: string, inputKey: string, outputKeys: string[]) {
  const graph = OnnxGraph.fromBytes(new Uint8Array(readFileSync(out(file))));
  expect(graph.outputNames.length).toBe(outputKeys.length);
  const x = g.tensor(inputKey);
  const result = graph.run({ [graph.inputNames[0]!]: x });
  const ours: Float32Array[] = [];
  for (const [i, name] of graph.outputNames.entries()) {
    const t = result[name]!;
    expect([...t.shape], `${file} ${outputKeys[i]}`).toEqual(g.host(outputKeys[i]!).shape);
    ours.push((await t.data()) as Float32Array);
  }
  const ortOuts = await runOrt(out(file), g.host(inputKey));
  T.dispose([x, ...Object.values(result)]);
  return { graph, ours, ortOuts };
}

describe('ONNX executor against PyTorch and ONNX Runtime', () => {
  for (const opset of [11, 13]) {
    it(`random-weight CE2P (SCHP) exported at opset ${opset}: parsing, fusion and edge logits`, async () => {
      const keys = ['ce2p/parsing', 'ce2p/fusion', 'ce2p/edge'];
      const { graph, ours, ortOuts } = await replay(`onnx_ce2p_op${opset}.onnx`, 'ce2p/x', keys);
      keys.forEach((k, i) => {
        expectClose(ours[i]!, g.host(k).data, 1e-4, `${k} vs torch`);
        expectClose(ours[i]!, ortOuts[i]!, 1e-4, `${k} vs onnxruntime`);
        // The oracle agrees with torch too, so the two comparisons check the same thing.
        expect(normalisedError(ortOuts[i]!, g.host(k).data)).toBeLessThan(1e-4);
      });
      const info = graph.info();
      expect(info.opset).toBe(opset);
      expect(info.producer).toMatch(/^pytorch /);
      // The exported InPlaceABN's Abs(weight) + eps are folded at load; the network ops remain.
      expect(info.ops.Abs).toBeUndefined();
      for (const op of [
        'Conv',
        'BatchNormalization',
        'LeakyRelu',
        'Relu',
        'MaxPool',
        'AveragePool',
        'GlobalAveragePool',
        'Resize',
        'Concat',
        'Add',
      ]) {
        expect(info.ops[op], op).toBeGreaterThan(0);
      }
      // Resize sizes come from Shape -> Slice -> Concat evaluated on the host at run time.
      expect(info.ops.Shape).toBeGreaterThan(0);
      graph.dispose();
    });

    it(`other exported ops at opset ${opset} (Softmax, Transpose, Gemm/MatMul, Pad, half-pixel and nearest Resize, ceil-mode AveragePool, Slice, Clip)`, async () => {
      const keys = ['misc/out0', 'misc/out1', 'misc/out2', 'misc/out3'];
      const { graph, ours, ortOuts } = await replay(`onnx_misc_op${opset}.onnx`, 'misc/x', keys);
      keys.forEach((k, i) => {
        expectClose(ours[i]!, g.host(k).data, 1e-4, `${k} vs torch`);
        expectClose(ours[i]!, ortOuts[i]!, 1e-4, `${k} vs onnxruntime`);
      });
      const ops = graph.info().ops;
      for (const op of [
        'Softmax',
        'LogSoftmax',
        'Transpose',
        'Pad',
        'Resize',
        'AveragePool',
        'Clip',
        'Slice',
        'Sigmoid',
        'MatMul',
      ])
        expect(ops[op], op).toBeGreaterThan(0);
      graph.dispose();
    });
  }

  it('reads initializers with their names, shapes and values', () => {
    const model = readOnnx(new Uint8Array(readFileSync(out('onnx_ce2p_op11.onnx'))));
    expect(model.opsets.get('')).toBe(11);
    expect(model.graph.inputs.map((i) => [i.name, i.elemType, i.shape])).toEqual([
      ['input.1', 'float32', [1, 3, 89, 81]],
    ]);
    const w = model.graph.initializers.get('conv1.weight')!;
    expect(w.dataType).toBe('float32');
    expect(w.dims).toEqual([8, 3, 3, 3]);
    expect(w.data).toBeInstanceOf(Float32Array);
    expect(w.data.length).toBe(8 * 27);
    expect(Math.max(...w.data.map(Math.abs))).toBeGreaterThan(0);
  });

  it('releases every intermediate tensor: after the first run only the uploaded weights stay live; runAsync', async () => {
    const graph = OnnxGraph.fromBytes(new Uint8Array(readFileSync(out('onnx_ce2p_op13.onnx'))));
    const x = g.tensor('ce2p/x');
    await T.sync();
    const before = T.memoryStats().liveBuffers;
    T.dispose(Object.values(graph.run({ 'input.1': x })));
    await T.sync();
    const weights = T.memoryStats().liveBuffers - before;
    // The folded BN scales and the convolution weights: one buffer per uploaded constant.
    expect(weights).toBeGreaterThan(30);
    // runAsync: the same nodes, awaiting the device every 16 of them.
    const outs = await graph.runAsync({ 'input.1': x });
    expect(Object.keys(outs).length).toBe(3);
    expectClose(await outs[graph.outputNames[1]!]!.data(), g.host('ce2p/fusion').data, 1e-4, 'runAsync fusion');
    await T.sync();
    expect(T.memoryStats().liveBuffers - before).toBe(weights + 3);
    T.dispose(Object.values(outs));
    graph.dispose();
    await T.sync();
    expect(T.memoryStats().liveBuffers).toBe(before);
    expect(x.isDisposed).toBe(false);
    x.dispose();
  });

  it('a feed of the wrong name or shape is refused', () => {
    const graph = OnnxGraph.fromBytes(new Uint8Array(readFileSync(out('onnx_ce2p_op11.onnx'))));
    const x = T.zeros([1, 3, 64, 64]);
    expect(() => graph.run({ 'input.1': x })).toThrow(
      /graph input 'input.1' expects shape \[1, 3, 89, 81\], got \[1, 3, 64, 64\]/,
    );
    expect(() => graph.run({ image: x })).toThrow(/no feed for graph input 'input.1'/);
    x.dispose();
    graph.dispose();
  });
});

// ---------------------------------------------------------------- hand-built files: typed fields and errors

const SCHEMA = `
syntax = "proto2";
message Model { optional int64 ir_version = 1; repeated Opset opset_import = 8; optional Graph graph = 7; }
message Opset { optional string domain = 1; optional int64 version = 2; }
message Graph { repeated Node node = 1; repeated Tensor initializer = 5; repeated ValueInfo input = 11; repeated ValueInfo output = 12; }
message Node { repeated string input = 1; repeated string output = 2; optional string name = 3; optional string op_type = 4; repeated Attr attribute = 5; }
message Attr { optional string name = 1; optional int32 type = 20; optional float f = 2; optional int64 i = 3; repeated int64 ints = 8; }
message Tensor { repeated int64 dims = 1; optional int32 data_type = 2; repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true]; repeated int64 int64_data = 7 [packed = true]; optional string name = 8;
  optional bytes raw_data = 9; repeated Entry external_data = 13; optional int32 data_location = 14; }
message Entry { optional string key = 1; optional string value = 2; }
message ValueInfo { optional string name = 1; optional Type type = 2; }
message Type { optional TensorType tensor_type = 1; }
message TensorType { optional int32 elem_type = 1; optional Shape shape = 2; }
message Shape { repeated Dim dim = 1; }
message Dim { optional int64 dim_value = 1; }
`;
const ModelType = protobuf.parse(SCHEMA, { keepCase: true }).root.lookupType('Model');

interface TensorSpec {
  name: string;
  dims: number[];
  data_type: number;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: number[];
  raw_data?: Uint8Array;
  data_location?: number;
  external_data?: { key: string; value: string }[];
}

function encode(nodes: object[], initializer: TensorSpec[], opset = 13): Uint8Array {
  const vi = (name: string, dims: number[]) => ({
    name,
    type: { tensor_type: { elem_type: 1, shape: { dim: dims.map((d) => ({ dim_value: d })) } } },
  });
  return ModelType.encode(
    ModelType.fromObject({
      ir_version: 7,
      opset_import: [{ domain: '', version: opset }],
      graph: { node: nodes, initializer, input: [vi('x', [2, 3])], output: [vi('y', [2, 3])] },
    }),
  ).finish();
}

describe('ONNX reader: tensor encodings and corrupt files', () => {
  it('float16 raw data, typed float_data and int64 shapes run through Add / Mul / Reshape', async () => {
    const half = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x0001, 0x7bff, 0x8000]).buffer); // 1, -2, 0.5, 2^-24, 65504, -0
    const model = encode(
      [
        { name: 'cast', op_type: 'Cast', input: ['h'], output: ['hf'], attribute: [{ name: 'to', type: 2, i: 1 }] },
        { name: 'add', op_type: 'Add', input: ['x', 'hf'], output: ['s'] },
        { name: 'mul', op_type: 'Mul', input: ['s', 'k'], output: ['m'] },
        { name: 'flat', op_type: 'Reshape', input: ['m', 'shape'], output: ['r'] },
        { name: 'back', op_type: 'Reshape', input: ['r', 'shape2'], output: ['b'] },
        { name: 'keep', op_type: 'Reshape', input: ['b', 'shape3'], output: ['y'] },
      ],
      [
        { name: 'h', dims: [2, 3], data_type: 10, raw_data: half },
        { name: 'k', dims: [3], data_type: 1, float_data: [1, 2, 3] },
        { name: 'shape', dims: [1], data_type: 7, int64_data: [-1] },
        { name: 'shape2', dims: [2], data_type: 7, int64_data: [2, -1] },
        // 0 copies the input's size.
        { name: 'shape3', dims: [2], data_type: 7, int64_data: [0, 3] },
      ],
    );
    const m = readOnnx(model);
    expect([...m.graph.initializers.get('h')!.data]).toEqual([1, -2, 0.5, 2 ** -24, 65504, -0]);
    expect(m.graph.initializers.get('shape2')!.dataType).toBe('int64');
    const graph = new OnnxGraph(m);
    // Cast(h) is folded at load: only the ops on the fed tensor remain.
    expect(graph.info().ops).toEqual({ Add: 1, Mul: 1, Reshape: 3 });
    const x = T.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const { y } = graph.run({ x });
    expect([...y!.shape]).toEqual([2, 3]);
    expect([...(await y!.data())]).toEqual(
      [(1 + 1) * 1, (2 - 2) * 2, (3 + 0.5) * 3, (4 + 2 ** -24) * 1, Math.fround(5 + 65504) * 2, 6 * 3].map(Math.fround),
    );
    T.dispose([x, y!]);
    graph.dispose();
  });

  it('declared sizes are checked against the data: short raw data, wrong typed-field counts, bad dims', () => {
    const node = [{ name: 'add', op_type: 'Add', input: ['x', 'w'], output: ['y'] }];
    expect(() =>
      readOnnx(encode(node, [{ name: 'w', dims: [2, 3], data_type: 1, raw_data: new Uint8Array(20) }])),
    ).toThrow(
      /initializer 'w' \(float32 \[2, 3\]\) needs 24 bytes of raw data, the file holds 20: the file is corrupt or truncated/,
    );
    expect(() => readOnnx(encode(node, [{ name: 'w', dims: [2, 3], data_type: 1, float_data: [1, 2, 3] }]))).toThrow(
      /initializer 'w' \(float32 \[2, 3\]\) declares 6 elements, the file holds 3/,
    );
    expect(() => readOnnx(encode(node, [{ name: 'w', dims: [2, -3], data_type: 1, float_data: [] }]))).toThrow(
      /initializer 'w' declares a bad dimension -3/,
    );
    expect(() =>
      readOnnx(encode(node, [{ name: 'w', dims: [65536, 65536], data_type: 1, raw_data: new Uint8Array(8) }])),
    ).toThrow(/declares 4294967296 elements/);
    expect(() => readOnnx(encode(node, [{ name: 'w', dims: [3], data_type: 8, raw_data: new Uint8Array(3) }]))).toThrow(
      /initializer 'w' has data type string, which is not supported/,
    );
    expect(() =>
      readOnnx(
        encode(node, [
          {
            name: 'w',
            dims: [3],
            data_type: 1,
            data_location: 1,
            external_data: [{ key: 'location', value: 'w.bin' }],
          },
        ]),
      ),
    ).toThrow(/initializer 'w' keeps its data in an external file/);
  });

  it('a truncated or foreign file errors as corrupt', () => {
    const bytes = new Uint8Array(readFileSync(out('onnx_ce2p_op11.onnx')));
    expect(() => readOnnx(bytes.subarray(0, Math.floor(bytes.length * 0.6)))).toThrow(
      /ONNX: (not a readable ONNX model \(corrupt or truncated protobuf\)|.*corrupt or truncated)/,
    );
    expect(() => readOnnx(new TextEncoder().encode('{"not": "onnx"}'))).toThrow(
      /ONNX: (not a readable ONNX model|the file holds no graph)/,
    );
  });

  it('unsupported ops, attributes and opsets are refused at load with the node, op type and what is supported', () => {
    const w = [{ name: 'w', dims: [2, 3], data_type: 1, float_data: [1, 2, 3, 4, 5, 6] }];
    const einsum = encode([{ name: 'mix', op_type: 'Einsum', input: ['x', 'w'], output: ['y'] }], w);
    expect(() => OnnxGraph.fromBytes(einsum)).toThrow(
      /ONNX node 'mix' \(Einsum\): op type 'Einsum' is not supported; supported \(default domain\): .*Conv, .*Resize/,
    );
    const cubic = encode(
      [{ name: 'up', op_type: 'Resize', input: ['x', '', 'w'], output: ['y'], attribute: [{ name: 'mode', type: 3 }] }],
      w,
    );
    // mode '' (an empty string attribute) is not a supported mode.
    expect(() => OnnxGraph.fromBytes(cubic)).toThrow(
      /ONNX node 'up' \(Resize\): mode '' is not supported \(nearest, linear\)/,
    );
    const convSame = encode(
      [
        {
          name: 'c',
          op_type: 'Conv',
          input: ['x', 'w'],
          output: ['y'],
          attribute: [{ name: 'kernel_shape', type: 7, ints: [3, 3, 3] }],
        },
      ],
      w,
    );
    expect(() => OnnxGraph.fromBytes(convSame)).toThrow(/ONNX node 'c' \(Conv\): only 2-D convolutions are supported/);
    expect(() =>
      OnnxGraph.fromBytes(encode([{ name: 'a', op_type: 'Add', input: ['x', 'w'], output: ['y'] }], w, 21)),
    ).toThrow(/opset 21 is not supported \(9-17\)/);
    expect(() =>
      OnnxGraph.fromBytes(encode([{ name: 'a', op_type: 'Add', input: ['x', 'nope'], output: ['y'] }], w)),
    ).toThrow(/ONNX node 'a' \(Add\): input 'nope' is not produced before this node/);
    expect(ONNX_SUPPORTED_OPS).toContain('BatchNormalization');
  });
});
