import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

const device = await T.init();

const unary =
  (f: (x: T.Tensor) => T.Tensor): OpAdapter =>
  ([x]) =>
    f(x!);
const binary =
  (f: (a: T.Tensor, b: T.Tensor) => T.Tensor): OpAdapter =>
  ([a, b]) =>
    f(a!, b!);
const reduce =
  (f: (x: T.Tensor, axes: number[] | undefined, keep: boolean) => T.Tensor): OpAdapter =>
  ([x], a) =>
    f(x!, a.axes ?? undefined, a.keepdim);

const OPS: Record<string, OpAdapter> = {
  neg: unary(T.neg),
  exp: unary(T.exp),
  log: unary(T.log),
  sqrt: unary(T.sqrt),
  rsqrt: unary(T.rsqrt),
  abs: unary(T.abs),
  relu: unary(T.relu),
  sigmoid: unary(T.sigmoid),
  tanh: unary(T.tanh),
  silu: unary(T.silu),
  softplus: unary(T.softplus),
  gelu: unary((x) => T.gelu(x)),
  gelu_tanh: unary((x) => T.gelu(x, 'tanh')),
  sin: unary(T.sin),
  cos: unary(T.cos),
  square: unary(T.square),
  reciprocal: unary(T.reciprocal),
  elu: unary((x) => T.elu(x)),
  leaky_relu: ([x], a) => T.leakyRelu(x!, a.slope),
  clamp: ([x], a) => T.clamp(x!, a.min ?? undefined, a.max ?? undefined),
  pow_scalar: ([x], a) => T.pow(x!, a.exponent),
  add: binary(T.add),
  sub: binary(T.sub),
  mul: binary(T.mul),
  div: binary(T.div),
  pow: binary(T.pow),
  maximum: binary(T.maximum),
  minimum: binary(T.minimum),
  add_scalar: ([x], a) => T.add(x!, a.scalar),
  rsub_scalar: ([x], a) => T.sub(a.scalar, x!),
  rdiv_scalar: ([x], a) => T.div(a.scalar, x!),
  mul_scalar: ([x], a) => T.mul(x!, a.scalar),
  where: ([c, a, b]) => T.where(c!, a!, b!),
  sum: reduce(T.sum),
  mean: reduce(T.mean),
  max: reduce(T.max),
  min: reduce(T.min),
  var: ([x], a) => T.variance(x!, a.axes ?? undefined, a.keepdim, a.correction ?? 1),
  logsumexp: reduce(T.logsumexp),
  argmax: ([x], a) => T.argmax(x!, a.axis),
  argmin: ([x], a) => T.argmin(x!, a.axis),
  permute: ([x], a) => T.permute(x!, a.dims),
  transpose: ([x], a) => T.transpose(x!, a.a, a.b),
  reshape: ([x], a) => T.reshape(x!, a.shape),
  expand: ([x], a) => T.expand(x!, a.shape),
  slice: ([x], a) => T.slice(x!, a.specs),
  pad: ([x], a) => T.pad(x!, a.pads, a.value),
  flip: ([x], a) => T.flip(x!, a.axes),
  concat: (xs, a) => T.concat(xs, a.axis),
  stack: (xs, a) => T.stack(xs, a.axis),
  split: ([x], a) => T.split(x!, a.sizes, a.axis),
  chunk: ([x], a) => T.chunk(x!, a.chunks, a.axis),
  repeat: ([x], a) => T.repeat(x!, a.times),
  matmul: binary(T.matmul),
  linear: ([x, w, b]) => T.linear(x!, w!, b),
  softmax: ([x], a) => T.softmax(x!, a.axis),
  log_softmax: ([x], a) => T.logSoftmax(x!, a.axis),
  glu: ([x], a) => T.glu(x!, a.axis),
  geglu: ([x], a) => T.geglu(x!, a.axis, a.approximate ?? 'none'),
};

beforeAll(async () => {
  await T.init();
});

replayGoldenGroup('core', OPS);

// Reductions' rows owned by workgroups of 8 invocations (CPU adapters' choice) and of 64 (every other adapter's).
for (const lanes of [8, 64] as const) {
  describe(`reduction rows in workgroups of ${lanes}`, () => {
    beforeAll(() => T.setRowLanes(lanes));
    afterAll(() => T.setRowLanes(null));
    replayGoldenGroup('core', OPS);
  });
}

it.runIf(device.report.features.includes('timestamp-query'))(
  'layout copies on CPU adapters move runs of 4 values per invocation where vec4 words do not fit',
  async () => {
    const keysOf = async (f: () => T.Tensor) => {
      const times = await device.profile(async () => {
        const out = f();
        await out.data();
        out.dispose();
      });
      return [...times.keys()];
    };
    const x = T.randn([2, 3, 5, 7]);
    const runs = device.report.isCpu ? ':runs' : '';
    // A padded row of 8 (odd source rows), a permute with 5-long rows, a rank-1 copy and rows of 3 without runs.
    expect(await keysOf(() => T.pad(x, [1, 0]))).toEqual([`gather:4:true${runs}`]);
    expect(await keysOf(() => T.permute(x, [0, 1, 3, 2]))).toEqual([`gather:3:false${runs}`]);
    expect(await keysOf(() => T.pad(T.reshape(x, [210]), [1, 2]))).toEqual(['gather:1:true']);
    const column = T.narrow(x, 3, 0, 1);
    expect(await keysOf(() => T.pad(column, [1, 1]))).toEqual(['gather:4:true']);
    T.dispose([x, column]);
  },
);
