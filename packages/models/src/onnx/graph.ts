import * as T from '@leffa-webgpu/core';
import {
  castTarget,
  hostBinary,
  hostCast,
  hostConcat,
  hostGather,
  hostSlice,
  hostTensor,
  hostTranspose,
  hostUnary,
  ints,
  normAxis,
  numel,
  reshapeTarget,
  sliceIndices,
} from './host.js';
import { type OnnxAttribute, type OnnxModel, type OnnxNode, type OnnxTensor, isFloatType, readOnnx } from './reader.js';

/**
 * Runs an ONNX graph on the library's ops: float tensors on the device, integer size arithmetic (Shape, Gather,
 * Concat, Slice, ... feeding Resize or Reshape) on the host, constant subgraphs folded once at load. The op set
 * covers what torch.onnx.export produces for convolutional segmentation networks in eval mode (opsets 9-17);
 * anything else is refused at load with the node, op type and the supported list named.
 */

type Value = T.Tensor | OnnxTensor;
const isHost = (v: Value): v is OnnxTensor => !(v instanceof T.Tensor);

interface Ctx {
  node: OnnxNode;
  opset: number;
  /** "ONNX node 'name' (OpType)" for error messages. */
  what: string;
}

interface OpImpl {
  /** Validates attributes at load (unsupported modes are refused before anything runs). */
  check?: (ctx: Ctx) => void;
  /** Evaluates with every input on the host (size arithmetic, constant folding). */
  host?: (inputs: (OnnxTensor | undefined)[], ctx: Ctx) => OnnxTensor[];
  /** Evaluates with device tensors; host inputs are uploaded where a tensor is needed. */
  device?: (inputs: (Value | undefined)[], ctx: Ctx, up: (v: Value | undefined, what: string) => T.Tensor) => Value[];
}

// ---------------------------------------------------------------- attribute helpers

function attr(ctx: Ctx, name: string): OnnxAttribute | undefined {
  return ctx.node.attributes.get(name);
}
const attrInt = (ctx: Ctx, name: string, d: number): number => attr(ctx, name)?.i ?? d;
const attrFloat = (ctx: Ctx, name: string, d: number): number => attr(ctx, name)?.f ?? d;
const attrInts = (ctx: Ctx, name: string): number[] | undefined => attr(ctx, name)?.ints;
const attrString = (ctx: Ctx, name: string, d: string): string => attr(ctx, name)?.s ?? d;

function onlyAttrs(ctx: Ctx, allowed: readonly string[]): void {
  for (const k of ctx.node.attributes.keys()) {
    if (!allowed.includes(k))
      throw new Error(`${ctx.what}: attribute '${k}' is not supported (supported: ${allowed.join(', ') || 'none'})`);
  }
}

/** An input that must be known on the host (sizes, axes, shapes). */
function hostIn(v: Value | undefined, ctx: Ctx, what: string): OnnxTensor {
  if (v === undefined) throw new Error(`${ctx.what}: input ${what} is missing`);
  if (!isHost(v))
    throw new Error(
      `${ctx.what}: input ${what} is computed on the device; it must be a constant or shape arithmetic on the host`,
    );
  return v;
}

const toList = (t: OnnxTensor): number[] => Array.from(t.data);

/** Converts a device result of an integer op to host is impossible synchronously; only float tensors live there. */
function deviceTensorFromHost(t: OnnxTensor): T.Tensor {
  if (isFloatType(t.dataType))
    return T.tensor(t.data instanceof Float32Array ? t.data : Float32Array.from(t.data), t.dims);
  for (const v of t.data) {
    if (!(v >= -(2 ** 31) && v < 2 ** 31)) throw new Error(`ONNX: integer value ${v} does not fit the device's int32`);
  }
  return T.tensor(Int32Array.from(t.data), t.dims, 'int32');
}

// ---------------------------------------------------------------- ops

const unaryDevice: Record<string, (x: T.Tensor) => T.Tensor> = {
  Relu: T.relu,
  Sigmoid: T.sigmoid,
  Tanh: T.tanh,
  Abs: T.abs,
  Neg: T.neg,
  Sqrt: T.sqrt,
  Exp: T.exp,
  Log: T.log,
  Floor: T.floor,
  Reciprocal: T.reciprocal,
};
const binaryDevice: Record<string, (a: T.Tensor, b: T.Tensor) => T.Tensor> = {
  Add: T.add,
  Sub: T.sub,
  Mul: T.mul,
  Div: T.div,
  Pow: T.pow,
  Max: T.maximum,
  Min: T.minimum,
};

const pair2 = (v: number[] | undefined, d: number, ctx: Ctx, name: string): [number, number] => {
  if (v === undefined) return [d, d];
  if (v.length !== 2) throw new Error(`${ctx.what}: only 2-D ${name} are supported, got [${v.join(', ')}]`);
  return [v[0]!, v[1]!];
};

/** ONNX pads [top, left, bottom, right] as symmetric [h, w], or null when asymmetric. */
function symmetricPads(ctx: Ctx): { sym: [number, number] | null; pads: number[] } {
  const pads = attrInts(ctx, 'pads') ?? [0, 0, 0, 0];
  if (pads.length !== 4) throw new Error(`${ctx.what}: only 2-D pads are supported, got [${pads.join(', ')}]`);
  const sym: [number, number] | null = pads[0] === pads[2] && pads[1] === pads[3] ? [pads[0]!, pads[1]!] : null;
  return { sym, pads };
}

function checkAutoPad(ctx: Ctx): void {
  const a = attrString(ctx, 'auto_pad', 'NOTSET');
  if (a !== 'NOTSET' && a !== 'VALID')
    throw new Error(`${ctx.what}: auto_pad '${a}' is not supported (NOTSET or VALID with explicit pads)`);
}

function require4d(x: T.Tensor, ctx: Ctx): void {
  if (x.rank !== 4) throw new Error(`${ctx.what}: only 2-D (NCHW) inputs are supported, got ${T.formatShape(x.shape)}`);
}

function resizeSizes(
  x: T.Tensor,
  scales: number[] | null,
  sizes: number[] | null,
  ctx: Ctx,
): { size: [number, number]; scale: [number, number] | null } {
  require4d(x, ctx);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  if (sizes && sizes.length > 0) {
    if (sizes.length !== 4 || sizes[0] !== N || sizes[1] !== C)
      throw new Error(`${ctx.what}: only spatial resizing of NCHW is supported, sizes [${sizes.join(', ')}]`);
    return { size: [sizes[2]!, sizes[3]!], scale: null };
  }
  if (!scales || scales.length !== 4 || scales[0] !== 1 || scales[1] !== 1) {
    throw new Error(
      `${ctx.what}: only spatial resizing of NCHW is supported, scales [${scales?.join(', ') ?? 'none'}]`,
    );
  }
  return { size: [Math.floor(H * scales[2]!), Math.floor(W * scales[3]!)], scale: [scales[2]!, scales[3]!] };
}

function resample(
  x: T.Tensor,
  mode: string,
  coord: string,
  nearest: string,
  size: [number, number],
  scale: [number, number] | null,
  ctx: Ctx,
): T.Tensor {
  if (mode === 'nearest') {
    // PyTorch's nearest (floor of out * in/out, or of out / scale) is ONNX's asymmetric + floor.
    if (coord !== 'asymmetric' || nearest !== 'floor')
      throw new Error(
        `${ctx.what}: nearest resizing needs coordinate_transformation_mode 'asymmetric' and nearest_mode 'floor', got '${coord}' / '${nearest}'`,
      );
    return T.interpolate(x, scale ? { scaleFactor: scale, mode: 'nearest' } : { size, mode: 'nearest' });
  }
  // linear: align_corners, or half_pixel (pytorch_half_pixel equals it except for a 1-pixel output, where PyTorch
  // reads the centre as half_pixel does for any size > 1).
  if (coord === 'align_corners') return T.interpolate(x, { size, mode: 'bilinear', alignCorners: true });
  if (coord === 'half_pixel' || (coord === 'pytorch_half_pixel' && size[0] > 1 && size[1] > 1)) {
    return T.interpolate(x, scale ? { scaleFactor: scale, mode: 'bilinear' } : { size, mode: 'bilinear' });
  }
  throw new Error(
    `${ctx.what}: linear resizing with coordinate_transformation_mode '${coord}' to ${size.join('x')} is not supported`,
  );
}

function checkResizeAttrs(ctx: Ctx): void {
  const mode = attrString(ctx, 'mode', 'nearest');
  if (mode !== 'nearest' && mode !== 'linear' && mode !== 'bilinear')
    throw new Error(`${ctx.what}: mode '${mode}' is not supported (nearest, linear)`);
  if (ctx.node.opType === 'Resize') {
    const coord = attrString(ctx, 'coordinate_transformation_mode', 'half_pixel');
    if (!['align_corners', 'half_pixel', 'pytorch_half_pixel', 'asymmetric'].includes(coord)) {
      throw new Error(
        `${ctx.what}: coordinate_transformation_mode '${coord}' is not supported (align_corners, half_pixel, pytorch_half_pixel, asymmetric)`,
      );
    }
    if (attrInt(ctx, 'antialias', 0) !== 0) throw new Error(`${ctx.what}: antialias is not supported`);
    if (attr(ctx, 'axes')) throw new Error(`${ctx.what}: the axes attribute is not supported`);
    if (attrString(ctx, 'keep_aspect_ratio_policy', 'stretch') !== 'stretch')
      throw new Error(`${ctx.what}: keep_aspect_ratio_policy other than 'stretch' is not supported`);
  }
}

function softmaxOld(x: T.Tensor, axis: number, log: boolean): T.Tensor {
  // Opsets < 13: softmax over the input flattened to 2-D at `axis`.
  const a = normAxis(axis, x.rank, 'Softmax');
  const flat = T.reshape(x, [numel(x.shape.slice(0, a)), numel(x.shape.slice(a))]);
  const y = log ? T.logSoftmax(flat, -1) : T.softmax(flat, -1);
  return T.reshape(y, x.shape);
}

function squeezeAxes(ctx: Ctx, inputs: (Value | undefined)[]): number[] | null {
  if (ctx.opset >= 13) return inputs[1] ? toList(hostIn(inputs[1], ctx, 'axes')) : null;
  return attrInts(ctx, 'axes') ?? null;
}

function squeezeDims(dims: readonly number[], axes: number[] | null, ctx: Ctx): number[] {
  if (axes === null) return dims.filter((d) => d !== 1);
  const ax = axes.map((a) => normAxis(a, dims.length, ctx.what));
  for (const a of ax) if (dims[a] !== 1) throw new Error(`${ctx.what}: cannot squeeze axis ${a} of size ${dims[a]}`);
  return dims.filter((_, i) => !ax.includes(i));
}

function unsqueezeDims(dims: readonly number[], axes: number[], ctx: Ctx): number[] {
  const r = dims.length + axes.length;
  const ax = axes.map((a) => normAxis(a, r, ctx.what)).sort((p, q) => p - q);
  const out = [...dims];
  for (const a of ax) out.splice(a, 0, 1);
  return out;
}

function sliceSpec(
  ctx: Ctx,
  inputs: (Value | undefined)[],
  rank: number,
  dims: readonly number[],
): (number[] | null)[] {
  let starts: number[];
  let ends: number[];
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = attrInts(ctx, 'starts') ?? [];
    ends = attrInts(ctx, 'ends') ?? [];
    axes = attrInts(ctx, 'axes');
  } else {
    starts = toList(hostIn(inputs[1], ctx, 'starts'));
    ends = toList(hostIn(inputs[2], ctx, 'ends'));
    axes = inputs[3] ? toList(hostIn(inputs[3], ctx, 'axes')) : undefined;
    steps = inputs[4] ? toList(hostIn(inputs[4], ctx, 'steps')) : undefined;
  }
  const per: (number[] | null)[] = new Array(rank).fill(null);
  starts.forEach((s, k) => {
    const a = normAxis(axes ? axes[k]! : k, rank, ctx.what);
    per[a] = sliceIndices(dims[a]!, s, ends[k]!, steps ? steps[k]! : 1, ctx.what);
  });
  return per;
}

function constantValue(ctx: Ctx): OnnxTensor {
  const a = ctx.node.attributes;
  if (a.get('value')?.t) return a.get('value')!.t!;
  if (a.get('value_float')) return hostTensor('float32', [], [a.get('value_float')!.f ?? 0]);
  if (a.get('value_floats'))
    return hostTensor('float32', [a.get('value_floats')!.floats!.length], a.get('value_floats')!.floats!);
  if (a.get('value_int')) return hostTensor('int64', [], [a.get('value_int')!.i ?? 0]);
  if (a.get('value_ints')) return ints(a.get('value_ints')!.ints!);
  throw new Error(`${ctx.what}: only tensor, float(s) and int(s) constants are supported`);
}

const OPS: Record<string, OpImpl> = {
  Constant: { host: (_i, ctx) => [constantValue(ctx)] },
  Identity: { host: ([x]) => [x!], device: ([x]) => [x!] },
  Dropout: {
    check: (ctx) => {
      if (ctx.node.outputs.length > 1 && ctx.node.outputs[1])
        throw new Error(`${ctx.what}: the mask output is not supported`);
    },
    host: ([x], ctx) => {
      if (attrInt(ctx, 'is_test', 1) === 0) throw new Error(`${ctx.what}: training-mode dropout is not supported`);
      return [x!];
    },
    device: ([x, , training], ctx) => {
      if (training && isHost(training) && training.data[0])
        throw new Error(`${ctx.what}: training-mode dropout is not supported`);
      return [x!];
    },
  },
  Shape: {
    host: ([x], ctx) => [ints(shapeSlice(x!.dims, ctx))],
    device: ([x], ctx) => [ints(shapeSlice((x as T.Tensor).shape, ctx))],
  },
  Size: {
    host: ([x]) => [hostTensor('int64', [], [numel(x!.dims)])],
    device: ([x]) => [hostTensor('int64', [], [(x as T.Tensor).size])],
  },
  Cast: {
    check: (ctx) => void castTarget(attrInt(ctx, 'to', 0), ctx.what),
    host: ([x], ctx) => [hostCast(x!, castTarget(attrInt(ctx, 'to', 0), ctx.what))],
    device: ([x], ctx) => {
      const to = castTarget(attrInt(ctx, 'to', 0), ctx.what);
      const t = x as T.Tensor;
      return [
        isFloatType(to)
          ? t.dtype === 'float32'
            ? t
            : T.cast(t, 'float32')
          : to === 'int32' || to === 'int64'
            ? t.dtype === 'int32'
              ? t
              : T.cast(t, 'int32')
            : fail(ctx, `cast of a device tensor to ${to}`),
      ];
    },
  },
  Gather: {
    host: ([x, idx], ctx) => [hostGather(x!, idx!, attrInt(ctx, 'axis', 0), ctx.what)],
    device: ([x, idx], ctx, up) => {
      const t = up(x, 'data');
      const index = hostIn(idx, ctx, 'indices');
      const axis = normAxis(attrInt(ctx, 'axis', 0), t.rank, ctx.what);
      const n = t.shape[axis]!;
      const list = toList(index).map((i) => (i < 0 ? i + n : i));
      if (list.some((i) => !(i >= 0 && i < n)))
        throw new Error(`${ctx.what}: an index is out of range for axis ${axis} of size ${n}`);
      const sel = T.indexSelect(t, axis, T.tensor(Int32Array.from(list), [list.length], 'int32'));
      return [T.reshape(sel, [...t.shape.slice(0, axis), ...index.dims, ...t.shape.slice(axis + 1)])];
    },
  },
  Unsqueeze: {
    host: ([x, axes], ctx) => {
      const ax = ctx.opset >= 13 ? toList(axes!) : (attrInts(ctx, 'axes') ?? []);
      return [{ ...x!, dims: unsqueezeDims(x!.dims, ax, ctx) }];
    },
    device: (inputs, ctx, up) => {
      const t = up(inputs[0], 'data');
      const ax = ctx.opset >= 13 ? toList(hostIn(inputs[1], ctx, 'axes')) : (attrInts(ctx, 'axes') ?? []);
      return [T.reshape(t, unsqueezeDims(t.shape, ax, ctx))];
    },
  },
  Squeeze: {
    host: (inputs, ctx) => [{ ...inputs[0]!, dims: squeezeDims(inputs[0]!.dims, squeezeAxes(ctx, inputs), ctx) }],
    device: (inputs, ctx, up) => {
      const t = up(inputs[0], 'data');
      return [T.reshape(t, squeezeDims(t.shape, squeezeAxes(ctx, inputs), ctx))];
    },
  },
  Reshape: {
    host: ([x, shape], ctx) => [
      {
        ...x!,
        dims: reshapeTarget(
          x!.dims,
          ctx.opset < 5 ? (attrInts(ctx, 'shape') ?? []) : toList(shape!),
          attrInt(ctx, 'allowzero', 0) === 1,
          ctx.what,
        ),
      },
    ],
    device: ([x, shape], ctx, up) => {
      const t = up(x, 'data');
      return [
        T.reshape(
          t,
          reshapeTarget(t.shape, toList(hostIn(shape, ctx, 'shape')), attrInt(ctx, 'allowzero', 0) === 1, ctx.what),
        ),
      ];
    },
  },
  Flatten: {
    host: ([x], ctx) => {
      const a = attrInt(ctx, 'axis', 1);
      const axis = a < 0 ? a + x!.dims.length : a;
      return [{ ...x!, dims: [numel(x!.dims.slice(0, axis)), numel(x!.dims.slice(axis))] }];
    },
    device: ([x], ctx, up) => {
      const t = up(x, 'input');
      const a = attrInt(ctx, 'axis', 1);
      const axis = a < 0 ? a + t.rank : a;
      return [T.reshape(t, [numel(t.shape.slice(0, axis)), numel(t.shape.slice(axis))])];
    },
  },
  Slice: {
    host: (inputs, ctx) => [hostSlice(inputs[0]!, sliceSpec(ctx, inputs, inputs[0]!.dims.length, inputs[0]!.dims))],
    device: (inputs, ctx, up) => {
      const t = up(inputs[0], 'data');
      const per = sliceSpec(ctx, inputs, t.rank, t.shape);
      let out = t;
      per.forEach((idx, d) => {
        if (!idx) return;
        if (idx.length === 0) throw new Error(`${ctx.what}: empty slices are not supported`);
        const step = idx.length > 1 ? idx[1]! - idx[0]! : 1;
        const specs: T.SliceSpec[] = t.shape.map(() => null);
        if (step > 0) {
          specs[d] = { start: idx[0]!, end: idx[idx.length - 1]! + 1, step };
          out = T.slice(out, specs);
        } else {
          specs[d] = { start: idx[idx.length - 1]!, end: idx[0]! + 1, step: -step };
          out = T.flip(T.slice(out, specs), [d]);
        }
      });
      return [out];
    },
  },
  Concat: {
    host: (xs, ctx) => [
      hostConcat(
        xs.filter((x): x is OnnxTensor => !!x && numel(x.dims) > 0),
        attrInt(ctx, 'axis', 0),
        ctx.what,
      ),
    ],
    device: (xs, ctx, up) => [
      T.concat(
        xs
          .filter((x) => x !== undefined)
          .map((x, i) => up(x, `input ${i}`))
          .filter((t) => t.size > 0),
        attrInt(ctx, 'axis', 0),
      ),
    ],
  },
  ConstantOfShape: {
    host: ([shape], ctx) => {
      const dims = toList(shape!);
      const v = attr(ctx, 'value')?.t ?? hostTensor('float32', [1], [0]);
      return [hostTensor(v.dataType, dims, new Array<number>(numel(dims)).fill(v.data[0] ?? 0))];
    },
  },
  Range: {
    host: ([start, limit, delta]) => {
      const s = start!.data[0]!;
      const d = delta!.data[0]!;
      const n = Math.max(Math.ceil((limit!.data[0]! - s) / d), 0);
      return [
        hostTensor(
          start!.dataType,
          [n],
          Array.from({ length: n }, (_, i) => s + i * d),
        ),
      ];
    },
  },
  Expand: {
    device: ([x, shape], ctx, up) => {
      const t = up(x, 'input');
      const target = toList(hostIn(shape, ctx, 'shape'));
      const r = Math.max(t.rank, target.length);
      const src = [...new Array<number>(r - t.rank).fill(1), ...t.shape];
      const tgt = [...new Array<number>(r - target.length).fill(1), ...target];
      return [
        T.expand(
          T.reshape(t, src),
          src.map((s, i) => (s === 1 ? tgt[i]! : s)),
        ),
      ];
    },
  },
  Transpose: {
    host: ([x], ctx) => [hostTranspose(x!, attrInts(ctx, 'perm') ?? [...x!.dims.keys()].reverse(), ctx.what)],
    device: ([x], ctx, up) => {
      const t = up(x, 'data');
      const perm = attrInts(ctx, 'perm') ?? [...t.shape.keys()].reverse();
      return [T.permute(t, perm)];
    },
  },
  Conv: {
    check: (ctx) => {
      onlyAttrs(ctx, ['dilations', 'group', 'kernel_shape', 'pads', 'strides', 'auto_pad']);
      checkAutoPad(ctx);
      const k = attrInts(ctx, 'kernel_shape');
      if (k && k.length !== 2)
        throw new Error(`${ctx.what}: only 2-D convolutions are supported, kernel_shape [${k.join(', ')}]`);
    },
    device: ([x, w, b], ctx, up) => {
      let t = up(x, 'X');
      require4d(t, ctx);
      const { sym, pads } = symmetricPads(ctx);
      if (!sym) t = T.pad(t, [pads[1]!, pads[3]!, pads[0]!, pads[2]!]);
      return [
        T.conv2d(t, up(w, 'W'), b ? up(b, 'B') : undefined, {
          stride: pair2(attrInts(ctx, 'strides'), 1, ctx, 'strides'),
          padding: sym ?? [0, 0],
          dilation: pair2(attrInts(ctx, 'dilations'), 1, ctx, 'dilations'),
          groups: attrInt(ctx, 'group', 1),
        }),
      ];
    },
  },
  BatchNormalization: {
    check: (ctx) => {
      if (attrInt(ctx, 'training_mode', 0) !== 0 || attrInt(ctx, 'is_test', 1) === 0)
        throw new Error(`${ctx.what}: training-mode batch norm is not supported`);
      if (ctx.node.outputs.filter(Boolean).length > 1)
        throw new Error(`${ctx.what}: the running-statistics outputs (training mode) are not supported`);
      if (ctx.opset < 7 && attr(ctx, 'spatial') && attrInt(ctx, 'spatial', 1) !== 1)
        throw new Error(`${ctx.what}: spatial=0 is not supported`);
    },
    device: ([x, scale, bias, mean, variance], ctx, up) => [
      T.batchNorm(up(x, 'X'), up(mean, 'mean'), up(variance, 'var'), up(scale, 'scale'), up(bias, 'B'), {
        training: false,
        eps: attrFloat(ctx, 'epsilon', 1e-5),
      }),
    ],
  },
  LeakyRelu: { device: ([x], ctx, up) => [T.leakyRelu(up(x, 'X'), attrFloat(ctx, 'alpha', 0.01))] },
  Clip: {
    device: ([x, lo, hi], ctx, up) => {
      const min =
        ctx.opset >= 11 ? (lo ? hostIn(lo, ctx, 'min').data[0]! : -Infinity) : attrFloat(ctx, 'min', -Infinity);
      const max = ctx.opset >= 11 ? (hi ? hostIn(hi, ctx, 'max').data[0]! : Infinity) : attrFloat(ctx, 'max', Infinity);
      return [T.clamp(up(x, 'input'), min, max)];
    },
  },
  MaxPool: {
    check: (ctx) => {
      onlyAttrs(ctx, ['ceil_mode', 'dilations', 'kernel_shape', 'pads', 'strides', 'storage_order', 'auto_pad']);
      checkAutoPad(ctx);
      if (ctx.node.outputs.filter(Boolean).length > 1)
        throw new Error(`${ctx.what}: the Indices output is not supported`);
      if (!symmetricPads(ctx).sym) throw new Error(`${ctx.what}: asymmetric pads are not supported`);
    },
    device: ([x], ctx, up) => {
      const t = up(x, 'X');
      require4d(t, ctx);
      return [
        T.maxPool2d(t, {
          kernelSize: pair2(attrInts(ctx, 'kernel_shape'), 1, ctx, 'kernel_shape'),
          stride: pair2(attrInts(ctx, 'strides'), 1, ctx, 'strides'),
          padding: symmetricPads(ctx).sym!,
          dilation: pair2(attrInts(ctx, 'dilations'), 1, ctx, 'dilations'),
          ceilMode: attrInt(ctx, 'ceil_mode', 0) === 1,
        }),
      ];
    },
  },
  AveragePool: {
    check: (ctx) => {
      onlyAttrs(ctx, ['ceil_mode', 'count_include_pad', 'kernel_shape', 'pads', 'strides', 'auto_pad']);
      checkAutoPad(ctx);
      if (!symmetricPads(ctx).sym) throw new Error(`${ctx.what}: asymmetric pads are not supported`);
    },
    device: ([x], ctx, up) => {
      const t = up(x, 'X');
      require4d(t, ctx);
      return [
        T.avgPool2d(t, {
          kernelSize: pair2(attrInts(ctx, 'kernel_shape'), 1, ctx, 'kernel_shape'),
          stride: pair2(attrInts(ctx, 'strides'), 1, ctx, 'strides'),
          padding: symmetricPads(ctx).sym!,
          ceilMode: attrInt(ctx, 'ceil_mode', 0) === 1,
          countIncludePad: attrInt(ctx, 'count_include_pad', 0) === 1,
        }),
      ];
    },
  },
  GlobalAveragePool: { device: ([x], _ctx, up) => [T.mean(up(x, 'X'), [2, 3], true)] },
  GlobalMaxPool: { device: ([x], _ctx, up) => [T.max(up(x, 'X'), [2, 3], true)] },
  ReduceMean: {
    check: (ctx) => {
      if (ctx.opset >= 18) throw new Error(`${ctx.what}: ReduceMean of opset 18+ (axes as an input) is not supported`);
    },
    device: ([x], ctx, up) => {
      const t = up(x, 'data');
      const axes = attrInts(ctx, 'axes') ?? [...t.shape.keys()];
      return [T.mean(t, axes, attrInt(ctx, 'keepdims', 1) === 1)];
    },
  },
  Softmax: {
    device: ([x], ctx, up) => {
      const t = up(x, 'input');
      const axis = attrInt(ctx, 'axis', ctx.opset >= 13 ? -1 : 1);
      return [ctx.opset >= 13 ? T.softmax(t, axis) : softmaxOld(t, axis, false)];
    },
  },
  LogSoftmax: {
    device: ([x], ctx, up) => {
      const t = up(x, 'input');
      const axis = attrInt(ctx, 'axis', ctx.opset >= 13 ? -1 : 1);
      return [ctx.opset >= 13 ? T.logSoftmax(t, axis) : softmaxOld(t, axis, true)];
    },
  },
  ArgMax: {
    check: (ctx) => {
      if (attrInt(ctx, 'select_last_index', 0) !== 0)
        throw new Error(`${ctx.what}: select_last_index is not supported`);
    },
    device: ([x], ctx, up) => [T.argmax(up(x, 'data'), attrInt(ctx, 'axis', 0), attrInt(ctx, 'keepdims', 1) === 1)],
  },
  MatMul: { device: ([a, b], _ctx, up) => [T.matmul(up(a, 'A'), up(b, 'B'))] },
  Gemm: {
    device: ([a, b, c], ctx, up) => {
      let A = up(a, 'A');
      let B = up(b, 'B');
      if (attrInt(ctx, 'transA', 0)) A = T.transpose(A);
      if (attrInt(ctx, 'transB', 0)) B = T.transpose(B);
      let y = T.matmul(A, B);
      const alpha = attrFloat(ctx, 'alpha', 1);
      if (alpha !== 1) y = T.mul(y, alpha);
      if (c) {
        const beta = attrFloat(ctx, 'beta', 1);
        const C = up(c, 'C');
        y = T.add(y, beta === 1 ? C : T.mul(C, beta));
      }
      return [y];
    },
  },
  Pad: {
    check: (ctx) => {
      const mode = attrString(ctx, 'mode', 'constant');
      if (mode !== 'constant') throw new Error(`${ctx.what}: pad mode '${mode}' is not supported (constant)`);
    },
    device: ([x, pads, value], ctx, up) => {
      const t = up(x, 'data');
      const p = ctx.opset >= 11 ? toList(hostIn(pads, ctx, 'pads')) : (attrInts(ctx, 'pads') ?? []);
      const v =
        ctx.opset >= 11 ? (value ? hostIn(value, ctx, 'constant_value').data[0]! : 0) : attrFloat(ctx, 'value', 0);
      const r = t.rank;
      if (p.length !== 2 * r || p.some((q) => q < 0))
        throw new Error(`${ctx.what}: pads [${p.join(', ')}] must be ${2 * r} non-negative values`);
      // ONNX [x1_begin, x2_begin, ..., x1_end, ...] -> PyTorch order from the last axis.
      const torchPads: number[] = [];
      for (let d = r - 1; d >= 0; d--) torchPads.push(p[d]!, p[d + r]!);
      return [T.pad(t, torchPads, v)];
    },
  },
  Resize: {
    check: checkResizeAttrs,
    device: (inputs, ctx, up) => {
      const t = up(inputs[0], 'X');
      const list = (i: number) => (inputs[i] ? toList(hostIn(inputs[i], ctx, i === 2 ? 'scales' : 'sizes')) : null);
      const { size, scale } =
        ctx.opset === 10 ? resizeSizes(t, list(1), null, ctx) : resizeSizes(t, list(2), list(3), ctx);
      const mode = attrString(ctx, 'mode', 'nearest');
      const coord =
        ctx.opset === 10
          ? mode === 'nearest'
            ? 'asymmetric'
            : 'half_pixel'
          : attrString(ctx, 'coordinate_transformation_mode', 'half_pixel');
      return [
        resample(
          t,
          mode === 'nearest' ? 'nearest' : 'linear',
          coord,
          attrString(ctx, 'nearest_mode', ctx.opset === 10 ? 'floor' : 'round_prefer_floor'),
          size,
          scale,
          ctx,
        ),
      ];
    },
  },
  Upsample: {
    check: checkResizeAttrs,
    device: ([x, scalesIn], ctx, up) => {
      const t = up(x, 'X');
      const scales = ctx.opset >= 9 ? toList(hostIn(scalesIn, ctx, 'scales')) : (attr(ctx, 'scales')?.floats ?? null);
      const { size, scale } = resizeSizes(t, scales, null, ctx);
      const mode = attrString(ctx, 'mode', 'nearest');
      // Upsample's linear mode is asymmetric (x_in = x_out / scale), which PyTorch's bilinear does not compute.
      if (mode !== 'nearest') throw new Error(`${ctx.what}: linear Upsample (asymmetric coordinates) is not supported`);
      return [resample(t, 'nearest', 'asymmetric', 'floor', size, scale, ctx)];
    },
  },
};

function fail(ctx: Ctx, what: string): never {
  throw new Error(`${ctx.what}: ${what} is not supported`);
}

function shapeSlice(dims: readonly number[], ctx: Ctx): number[] {
  const r = dims.length;
  const norm = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  return dims.slice(norm(attrInt(ctx, 'start', 0)), norm(attrInt(ctx, 'end', r)));
}

for (const [op, f] of Object.entries(unaryDevice)) {
  OPS[op] = { host: ([x]) => [hostUnary(op, x!)], device: ([x], _c, up) => [f(up(x, 'X'))] };
}
for (const [op, f] of Object.entries(binaryDevice)) {
  OPS[op] = { host: ([a, b]) => [hostBinary(op, a!, b!)], device: ([a, b], _c, up) => [f(up(a, 'A'), up(b, 'B'))] };
}
for (const op of ['Equal', 'Less', 'Greater']) OPS[op] = { host: ([a, b]) => [hostBinary(op, a!, b!)] };
OPS.Relu!.host = ([x]) => [hostUnary('Relu', x!)];

/** The op types the executor runs (default domain). */
export const ONNX_SUPPORTED_OPS: readonly string[] = Object.keys(OPS).sort();
/** Ops with only a host implementation: they run when their inputs are constants or shape arithmetic. */
const HOST_ONLY = new Set(
  Object.entries(OPS)
    .filter(([, o]) => !o.device)
    .map(([k]) => k),
);

export const ONNX_MIN_OPSET = 9;
export const ONNX_MAX_OPSET = 17;

export interface OnnxGraphInfo {
  producer: string;
  opset: number;
  /** Node count by op type, after constant folding. */
  ops: Record<string, number>;
  inputs: { name: string; shape: (number | string | null)[] | null }[];
  outputs: string[];
}

/**
 * An ONNX graph ready to run: `OnnxGraph.fromBytes(fs.readFileSync('model.onnx'))`, then
 * `graph.run({ 'input.1': x })` -> { outputName: tensor }. Weights are uploaded on first use and kept until
 * `dispose()`. Outputs are new tensors the caller owns; feeds stay the caller's.
 */
export class OnnxGraph {
  readonly opset: number;
  readonly inputNames: string[];
  readonly outputNames: string[];
  readonly producer: string;
  private readonly constants = new Map<string, OnnxTensor>();
  private readonly uploads = new Map<string, T.Tensor>();
  private readonly plan: { node: OnnxNode; impl: OpImpl; ctx: Ctx }[] = [];
  private readonly inputInfo: OnnxGraphInfo['inputs'];

  static fromBytes(bytes: Uint8Array): OnnxGraph {
    return new OnnxGraph(readOnnx(bytes));
  }

  constructor(model: OnnxModel) {
    const opset = model.opsets.get('');
    if (opset === undefined) throw new Error('ONNX: the model imports no default-domain (ai.onnx) opset');
    if (opset < ONNX_MIN_OPSET || opset > ONNX_MAX_OPSET)
      throw new Error(`ONNX: opset ${opset} is not supported (${ONNX_MIN_OPSET}-${ONNX_MAX_OPSET})`);
    this.opset = opset;
    this.producer = model.producer;
    const g = model.graph;
    for (const [k, v] of g.initializers) this.constants.set(k, v);
    this.inputNames = g.inputs.map((i) => i.name);
    this.inputInfo = g.inputs.map((i) => ({ name: i.name, shape: i.shape }));
    this.outputNames = g.outputs.map((o) => o.name);
    const known = new Set<string>([...this.constants.keys(), ...this.inputNames]);
    for (const node of g.nodes) {
      const what = `ONNX node '${node.name}' (${node.opType}${node.domain ? `, domain '${node.domain}'` : ''})`;
      const impl = node.domain === '' ? OPS[node.opType] : undefined;
      if (!impl) {
        throw new Error(
          `${what}: op type '${node.opType}'${node.domain ? ` of domain '${node.domain}'` : ''} is not supported; supported (default domain): ${ONNX_SUPPORTED_OPS.join(', ')}`,
        );
      }
      for (const i of node.inputs)
        if (i && !known.has(i))
          throw new Error(
            `${what}: input '${i}' is not produced before this node (the graph is not topologically sorted, or the input is missing)`,
          );
      const ctx: Ctx = { node, opset, what };
      impl.check?.(ctx);
      // Constant folding: every input known on the host and a host implementation.
      const ins = node.inputs.map((i) => (i ? this.constants.get(i) : undefined));
      const allConst = node.inputs.every((i, k) => !i || ins[k] !== undefined);
      if (allConst && impl.host) {
        const outs = impl.host(ins, ctx);
        node.outputs.forEach((o, k) => o && this.constants.set(o, outs[k]!));
      } else {
        this.plan.push({ node, impl, ctx });
      }
      for (const o of node.outputs) if (o) known.add(o);
    }
    for (const o of this.outputNames)
      if (!known.has(o)) throw new Error(`ONNX: graph output '${o}' is produced by no node`);
  }

  info(): OnnxGraphInfo {
    const ops: Record<string, number> = {};
    for (const { node } of this.plan) ops[node.opType] = (ops[node.opType] ?? 0) + 1;
    return { producer: this.producer, opset: this.opset, ops, inputs: this.inputInfo, outputs: [...this.outputNames] };
  }

  private upload(name: string, v: OnnxTensor): T.Tensor {
    let t = this.uploads.get(name);
    if (!t) {
      t = T.keep(deviceTensorFromHost(v));
      this.uploads.set(name, t);
    }
    return t;
  }

  /**
   * Runs the graph on float32 feeds (one per graph input) and returns every graph output as a device tensor.
   * Intermediate tensors are released as soon as their last consumer has run. Large graphs: prefer `runAsync`.
   */
  run(feeds: Record<string, T.Tensor>): Record<string, T.Tensor> {
    const it = this.steps(feeds);
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
    }
  }

  /** `run`, awaiting the device every 16 nodes so that a large graph never queues unbounded GPU work. */
  async runAsync(feeds: Record<string, T.Tensor>): Promise<Record<string, T.Tensor>> {
    const it = this.steps(feeds);
    for (let k = 0; ; k++) {
      const r = it.next();
      if (r.done) return r.value;
      if (k % 16 === 15) await T.throttle();
    }
  }

  private *steps(feeds: Record<string, T.Tensor>): Generator<void, Record<string, T.Tensor>> {
    for (const name of this.inputNames)
      if (!feeds[name])
        throw new Error(`ONNX: no feed for graph input '${name}' (inputs: ${this.inputNames.join(', ')})`);
    for (const name of Object.keys(feeds))
      if (!this.inputNames.includes(name))
        throw new Error(`ONNX: '${name}' is not a graph input (inputs: ${this.inputNames.join(', ')})`);
    for (const { name, shape } of this.inputInfo) {
      const t = feeds[name]!;
      if (
        shape &&
        (shape.length !== t.rank || shape.some((d, i) => typeof d === 'number' && d > 0 && d !== t.shape[i]))
      ) {
        throw new Error(
          `ONNX: graph input '${name}' expects shape [${shape.map((d) => d ?? '?').join(', ')}], got ${T.formatShape(t.shape)}`,
        );
      }
    }
    // Last use of every runtime value, so device tensors are released early.
    const lastUse = new Map<string, number>();
    this.plan.forEach(({ node }, k) => node.inputs.forEach((i) => i && lastUse.set(i, k)));
    const outputs = new Set(this.outputNames);
    const values = new Map<string, Value>();
    for (const [k, v] of Object.entries(feeds)) values.set(k, v);
    const owned = new Map<T.Tensor, number>(); // device tensors this run created -> live names
    const release = (name: string) => {
      const v = values.get(name);
      values.delete(name);
      if (!v || isHost(v) || !owned.has(v)) return;
      const n = owned.get(v)! - 1;
      if (n > 0) owned.set(v, n);
      else {
        owned.delete(v);
        v.dispose();
      }
    };
    try {
      for (const [k, { node, impl, ctx }] of this.plan.entries()) {
        const ins = node.inputs.map((i) => (i ? (values.get(i) ?? this.constants.get(i)) : undefined));
        const up = (v: Value | undefined, what: string): T.Tensor => {
          if (v === undefined) throw new Error(`${ctx.what}: input ${what} is missing`);
          if (!isHost(v)) return v;
          const name = node.inputs[ins.indexOf(v)]!;
          return this.constants.get(name) === v ? this.upload(name, v) : deviceTensorFromHost(v);
        };
        const onHost = ins.every((v) => v === undefined || isHost(v));
        let outs: Value[];
        try {
          outs = T.noGrad(() =>
            T.tidy(() => {
              if (onHost && impl.host) return impl.host(ins as (OnnxTensor | undefined)[], ctx);
              if (!impl.device) throw new Error(`${ctx.what}: runs on the host only, but an input is a device tensor`);
              return impl.device(ins, ctx, up);
            }),
          );
        } catch (e) {
          const msg = (e as Error).message;
          throw new Error(msg.startsWith('ONNX') ? msg : `${ctx.what}: ${msg}`);
        }
        node.outputs.forEach((o, j) => {
          if (!o) return;
          const v = outs[j]!;
          values.set(o, v);
          if (isHost(v)) return;
          if (owned.has(v)) owned.set(v, owned.get(v)! + 1);
          else if (!ins.includes(v) && !Object.values(feeds).includes(v) && ![...this.uploads.values()].includes(v))
            owned.set(v, 1);
        });
        for (const i of new Set(node.inputs))
          if (i && lastUse.get(i) === k && !outputs.has(i) && values.has(i)) release(i);
        yield;
      }
      const result: Record<string, T.Tensor> = {};
      for (const o of this.outputNames) {
        const v = values.get(o) ?? this.constants.get(o)!;
        // Outputs the caller owns: constants and feeds passed through are copied.
        result[o] = isHost(v) ? deviceTensorFromHost(v) : owned.has(v) ? v : T.noGrad(() => T.mul(v, 1));
        if (!isHost(v)) owned.delete(v);
      }
      return result;
    } finally {
      for (const t of owned.keys()) t.dispose();
    }
  }

  /** Releases the uploaded weights. */
  dispose(): void {
    for (const t of this.uploads.values()) t.dispose();
    this.uploads.clear();
  }
}
