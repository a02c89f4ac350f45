import * as T from '@leffa-webgpu/core';
import { describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.js';
import { type OpAdapter, loadGoldenGroup, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

type Fn = (a: T.Tensor | number, b: T.Tensor | number) => T.Tensor;
const BINARY: Record<string, Fn> = {
  add: T.add,
  sub: T.sub,
  mul: T.mul,
  div: T.div,
  maximum: T.maximum,
  minimum: T.minimum,
  floorDivide: T.floorDivide,
  lt: T.lt,
  le: T.le,
  eq: T.eq,
  ne: T.ne,
  gt: T.gt,
  ge: T.ge,
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
  norm: ([x], a) =>
    T.norm(x!, a.p === 'inf' ? Infinity : a.p === '-inf' ? -Infinity : a.p, a.axes ?? undefined, a.keepdim),
  clone: ([x]) => T.clone(x!),
  masked_fill: ([x, m], a) => T.maskedFill(x!, m!, a.value === '-inf' ? -Infinity : a.value),
  tril: ([x], a) => T.tril(x!, a.diagonal),
  triu: ([x], a) => T.triu(x!, a.diagonal),
  topk: ([x], a) => {
    const { values, indices } = T.topk(x!, a.k, a.axis, a.largest);
    return [values, indices];
  },
  scatter: ([x, i, s], a) => T.scatter(x!, a.axis, i!, s!),
  scatter_value: ([x, i], a) => T.scatter(x!, a.axis, i!, a.value),
  scatter_add: ([x, i, s], a) => T.scatterAdd(x!, a.axis, i!, s!),
  slice: ([x], a) =>
    T.slice(
      x!,
      (a.specs as (Record<string, number | null> | null)[]).map(
        (s) =>
          s && {
            ...(s.start != null ? { start: s.start } : {}),
            ...(s.end != null ? { end: s.end } : {}),
            ...(s.step != null ? { step: s.step } : {}),
          },
      ),
    ),
  einsum: (xs, a) => T.einsum(a.equation, ...xs),
  conv1d: ([x, w, b], a) => T.conv1d(x!, w!, b, a),
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

/** Data-dependent output sizes: these ops read back and are asynchronous, so they get their own replay. */
const ASYNC: Record<string, (inputs: T.Tensor[], attrs: Record<string, any>) => Promise<T.Tensor>> = {
  boolean_mask: ([x, m]) => T.booleanMask(x!, m!),
  nonzero: ([x]) => T.nonzero(x!),
};

describe('parity: tensor_api_async', () => {
  const g = loadGoldenGroup('tensor_api_async');
  const host = (key: string) => g.tensors.get(key)!;
  for (const c of g.cases) {
    it(c.name, async () => {
      const inputs = c.inputs.map((spec, i) => {
        const h = host(`${c.name}.in${i}`);
        const t = T.tensor(h.data, h.shape, h.data instanceof Int32Array ? 'int32' : 'float32');
        t.requiresGrad = spec.requiresGrad;
        return t;
      });
      const out = await ASYNC[c.op]!(inputs, c.attrs);
      const expected = host(`${c.name}.out0`);
      expect([...out.shape]).toEqual(expected.shape);
      expect(out.dtype).toBe(c.attrs.dtype ?? 'float32');
      expect(Array.from(out.dtype === 'int32' ? await out.intData() : await out.data())).toEqual(
        Array.from(expected.data),
      );
      if (c.grads.length > 0) {
        const go = host(`${c.name}.gout0`);
        T.tidy(() => T.sum(T.mul(out, T.tensor(go.data, go.shape))).backward());
        for (const i of c.grads) {
          expectClose(
            await inputs[i]!.grad!.data(),
            host(`${c.name}.grad${i}`).data,
            1e-6,
            `${c.name} grad of input ${i}`,
          );
        }
      }
      T.dispose([out, ...inputs]);
    });
  }
});

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
