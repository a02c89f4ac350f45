import * as T from '@leffa-webgpu/core';
import { describe, expect, it } from 'vitest';
import { type OpAdapter, loadGoldenGroup, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

type Fn = (a: T.Tensor | number, b: T.Tensor | number) => T.Tensor;
const BINARY: Record<string, Fn> = {
  add: T.add, sub: T.sub, mul: T.mul, div: T.div, maximum: T.maximum, minimum: T.minimum, floorDivide: T.floorDivide,
  lt: T.lt, le: T.le, eq: T.eq, ne: T.ne, gt: T.gt, ge: T.ge,
};
const UNARY: Record<string, (x: T.Tensor) => T.Tensor> = { neg: T.neg, abs: T.abs };

const OPS: Record<string, OpAdapter> = {
  binary: ([a, b], at) => BINARY[at.fn]!(a!, b!),
  binary_scalar: ([a], at) => BINARY[at.fn]!(a!, at.scalar),
  binary_rscalar: ([b], at) => BINARY[at.fn]!(at.scalar, b!),
  unary: ([x], at) => UNARY[at.fn]!(x!),
  sum: ([x], a) => T.sum(x!, a.axes ?? undefined, a.keepdim),
  max: ([x], a) => T.max(x!, a.axes ?? undefined, a.keepdim),
  min: ([x], a) => T.min(x!, a.axes ?? undefined, a.keepdim),
  where: ([c, a, b]) => T.where(c!, a!, b!),
  log1p: ([x]) => T.log1p(x!),
  erf: ([x]) => T.erf(x!),
  cumsum: ([x], a) => T.cumsum(x!, a.axis),
  prod: ([x], a) => T.prod(x!, a.axes ?? undefined, a.keepdim),
  norm: ([x], a) => T.norm(x!, a.p === 'inf' ? Infinity : a.p === '-inf' ? -Infinity : a.p, a.axes ?? undefined, a.keepdim),
  clone: ([x]) => T.clone(x!),
};

/** Every adapter also checks the result dtype the case names (PyTorch's, with int64 as int32 and bool as float). */
const checked: Record<string, OpAdapter> = Object.fromEntries(
  Object.entries(OPS).map(([name, f]) => [
    name,
    (inputs: T.Tensor[], attrs: Record<string, any>) => {
      const out = f(inputs, attrs);
      const dtype = attrs.dtype as string | undefined;
      if (dtype) for (const o of Array.isArray(out) ? out : [out]) expect(o.dtype, `${name} result dtype`).toBe(dtype);
      return out;
    },
  ]),
);

replayGoldenGroup('tensor_api', checked);

describe('int32 results are exact', () => {
  const g = loadGoldenGroup('tensor_api');
  for (const c of g.cases.filter((c) => c.attrs.dtype === 'int32')) {
    it(c.name, async () => {
      const inputs = c.inputs.map((_, i) => {
        const h = g.tensors.get(`${c.name}.in${i}`)!;
        return T.tensor(h.data, h.shape, h.data instanceof Int32Array ? 'int32' : 'float32');
      });
      const out = checked[c.op]!(inputs, c.attrs) as T.Tensor;
      const expected = g.tensors.get(`${c.name}.out0`)!.data;
      expect(expected).toBeInstanceOf(Int32Array);
      expect(Array.from(await out.intData())).toEqual(Array.from(expected));
      T.dispose([out, ...inputs]);
    });
  }
});
