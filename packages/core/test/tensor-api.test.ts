import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

const values = (n: number, seed: number, scale = 1) =>
  Array.from({ length: n }, (_, i) => Math.sin(i * 1.913 + seed) * scale);
const leaf = (shape: number[], seed: number, scale = 1) => {
  const t = T.tensor(
    values(
      shape.reduce((a, b) => a * b, 1),
      seed,
      scale,
    ),
    shape,
  );
  t.requiresGrad = true;
  return t;
};
const ints = (data: number[], shape?: number[]) => T.tensor(Int32Array.from(data), shape ?? [data.length]);

async function check(
  name: string,
  fn: (...xs: T.Tensor[]) => T.Tensor,
  inputs: T.Tensor[],
  options: T.GradcheckOptions = {},
) {
  const r = await T.gradcheck(fn, inputs, options);
  expect(r.ok, `${name}: ${JSON.stringify(r.worst)}`).toBe(true);
}

describe('dtypes', () => {
  it('an unknown dtype is refused naming the op and the accepted dtypes, before any allocation', () => {
    const z = T.zeros([2]);
    const before = T.memoryStats();
    const bad = 'bfloat16' as T.DType;
    expect(() => T.zeros([2, 3], bad)).toThrow(
      `zeros: unknown dtype "bfloat16" (accepted dtypes: float32, float16, int32)`,
    );
    expect(() => T.full([2], 1, 'int64' as T.DType)).toThrow(/^full: unknown dtype "int64"/);
    expect(() => T.tensor([1, 2], [2], 'bool' as T.DType)).toThrow(/^tensor: unknown dtype "bool"/);
    expect(() => T.arange(5, undefined, 1, 'f32' as T.DType)).toThrow(/^arange: unknown dtype "f32"/);
    expect(() => T.cast(z, 'uint8' as T.DType)).toThrow(/^cast: unknown dtype "uint8"/);
    expect(() => T.emptyTensor([2], 'double' as T.DType, 'myOp')).toThrow(/^myOp: unknown dtype "double"/);
    expect(T.memoryStats().liveBytes).toBe(before.liveBytes);
  });

  it('int32 arithmetic keeps int32 and wraps like PyTorch', async () => {
    const a = ints([2147483647, -7, 5]);
    const b = ints([1, 2, -3]);
    const s = T.add(a, b);
    expect(s.dtype).toBe('int32');
    expect(Array.from(await s.intData())).toEqual([-2147483648, -5, 2]);
    expect(Array.from(await T.sub(b, 1).intData())).toEqual([0, 1, -4]);
    expect(Array.from(await T.floorDivide(ints([-7, 7, -7, 7]), ints([2, 2, -2, -2])).intData())).toEqual([
      -4, 3, 3, -4,
    ]);
    expect(T.div(a, b).dtype).toBe('float32');
    expect(T.mul(b, 0.5).dtype).toBe('float32');
    expect(T.mul(b, 2).dtype).toBe('int32');
    expect(Array.from(await a.add(b).sum().intData())).toEqual([-2147483651 | 0]);
  });

  it('int32 operands that cannot be int32 are refused clearly', () => {
    const a = ints([1, 2]);
    expect(() => T.add(a, 2 ** 40)).toThrow('add: the scalar 1099511627776 does not fit an int32 operand');
    expect(() => T.floorDivide(a, 0)).toThrow('floorDivide: integer division by zero');
    expect(() => T.pow(a, ints([1, 2]))).toThrow('pow: int32 operands are not supported (cast to float32 first)');
    expect(() => T.exp(a)).toThrow('exp: input 0 has dtype int32, expected float32 or float16');
    expect(() => T.mean(a)).toThrow(/mean: input 0 has dtype int32, expected float32 or float16/);
  });

  it('mixed int32/float32 operands promote to float32 and the gradient reaches the float operand', async () => {
    const x = leaf([2, 3], 1);
    const n = ints([1, -2, 3], [3]);
    const y = T.mul(x, n);
    expect(y.dtype).toBe('float32');
    y.sum().backward();
    expect(Array.from(await x.grad!.data())).toEqual([1, -2, 3, 1, -2, 3]);
  });
});

describe('scans, products, norms', () => {
  it('int32 cumsum and prod stay int32; clone copies storage', async () => {
    const a = ints([3, -1, 4, 1, -5, 9], [2, 3]);
    const c = T.cumsum(a, 1);
    expect(c.dtype).toBe('int32');
    expect(Array.from(await c.intData())).toEqual([3, 2, 6, 1, -4, 5]);
    expect(Array.from(await T.prod(a, 0).intData())).toEqual([3, 5, 36]);
    const b = T.clone(a);
    expect(b.storage).not.toBe(a.storage);
    expect(Array.from(await b.intData())).toEqual([3, -1, 4, 1, -5, 9]);
  });

  it('a long row is scanned by a workgroup and agrees with a float64 running sum', async () => {
    const n = 5000;
    const v = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) + 0.01);
    const out = await T.cumsum(T.tensor(v), 0).data();
    let acc = 0;
    let worst = 0;
    for (let i = 0; i < n; i++) {
      acc += v[i]!;
      worst = Math.max(worst, Math.abs(out[i]! - acc));
    }
    expect(worst).toBeLessThan(1e-4);
  });

  it('norm refuses a non-numeric p and int32 input', () => {
    expect(() => T.norm(T.zeros([2]), 'fro' as unknown as number)).toThrow(
      'norm: p must be a number (Infinity for the max norm), got fro',
    );
    expect(() => T.norm(ints([1, 2]))).toThrow('norm: expected a float tensor, got int32 [2]');
  });
});

describe('indexing and composites', () => {
  it('booleanMask and nonzero read back and give data-dependent shapes', async () => {
    const x = T.tensor([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const rows = await T.booleanMask(x, ints([1, 0, 1]));
    expect(rows.shape).toEqual([2, 2]);
    expect(Array.from(await rows.data())).toEqual([1, 2, 5, 6]);
    const nz = await T.nonzero(
      T.tensor([
        [0, 2],
        [3, 0],
      ]),
    );
    expect(nz.dtype).toBe('int32');
    expect(Array.from(await nz.intData())).toEqual([0, 1, 1, 0]);
    await expect(T.booleanMask(x, ints([1, 0]))).rejects.toThrow(
      'booleanMask: mask [2] must match the leading dims of the input [3, 2]',
    );
  });

  it('slice takes Python negative steps and refuses a zero step', async () => {
    const x = T.arange(6);
    expect(Array.from(await T.slice(x, [{ step: -1 }]).data())).toEqual([5, 4, 3, 2, 1, 0]);
    expect(Array.from(await T.slice(x, [{ start: 5, end: 1, step: -2 }]).data())).toEqual([5, 3]);
    expect(Array.from(await T.slice(x, [{ start: -1, end: -7, step: -4 }]).data())).toEqual([5, 1]);
    expect(T.slice(x, [{ start: 1, end: 4, step: -1 }]).shape).toEqual([0]);
    expect(() => T.slice(x, [{ step: 0 }])).toThrow('slice: step must be a non-zero integer, got 0');
  });

  it('errors name the op, the shapes and what was expected', () => {
    const x = T.zeros([3, 4]);
    expect(() => T.maskedFill(x, T.zeros([2, 4]), 1)).toThrow(
      'maskedFill: shapes [3, 4] and [2, 4] are not broadcastable',
    );
    expect(() => T.maskedFill(x, T.zeros([2, 3, 4]), 1)).toThrow(
      "maskedFill: mask [2, 3, 4] must broadcast to the input's shape [3, 4]",
    );
    expect(() => T.tril(T.zeros([3]))).toThrow('tril: expected a tensor of at least 2 dims, got [3]');
    expect(() => T.topk(x, 5)).toThrow('topk: k = 5 is out of range for axis -1 of size 4 (input [3, 4])');
    expect(() => T.scatter(x, 1, ints([0, 1]), 1)).toThrow('scatter: index [2] must have the rank of input [3, 4]');
    expect(() => T.scatter(x, 1, T.zeros([3, 1]), 1)).toThrow('scatter: index must be int32, got float32 [3, 1]');
    expect(() => T.scatterAdd(x, 0, ints([0, 1, 2, 0], [1, 4]), T.zeros([1, 3]))).toThrow(
      /scatterAdd: index \[1, 4\] must have the rank of input \[3, 4\], src \[1, 3\]/,
    );
    expect(() => T.einsum('ij,jk->ik', x, T.zeros([5, 2]))).toThrow(
      "einsum: 'ij,jk->ik': label 'j' has size 4 in one operand and 5 in another",
    );
    expect(() => T.einsum('ij->k', x)).toThrow("einsum: 'ij->k': output label 'k' does not occur in the operands");
    expect(() => T.einsum('ijk', x)).toThrow("einsum: 'ijk': operand 0 'ijk' names 3 dims, the operand has 2");
    expect(() => T.einsum('ij,jk', x)).toThrow("einsum: 'ij,jk' names 2 operands, 1 given");
    expect(() => T.conv1d(T.zeros([1, 2, 3, 4]), T.zeros([1, 2, 1]))).toThrow(
      'conv1d: expected input [N, C, L] or [C, L], got [1, 2, 3, 4]',
    );
  });

  it('scatter indices out of range fail the next readback naming the op', async () => {
    const out = T.scatter(T.zeros([2, 3]), 1, ints([0, 3], [2, 1]), 1);
    await expect(out.data()).rejects.toThrow(/scatter: index 3 is out of range \(expected 0 <= index < 3/);
  });
});

describe('finite-difference gradients', () => {
  it('log1p, erf', async () => {
    await check(
      'log1p',
      (x) => T.log1p(x),
      [T.tensor([0.3, -0.5, 2, 0.01, 4], [5])].map((t) => ((t.requiresGrad = true), t)),
      { eps: 1e-3 },
    );
    await check('erf', (x) => T.erf(x), [leaf([3, 4], 2, 1.5)], { eps: 1e-3 });
  });

  it('cumsum (short and workgroup-scanned rows), prod (with a zero), norm, clone', async () => {
    await check('cumsum', (x) => T.cumsum(x, 1), [leaf([2, 5, 3], 3)]);
    await check('cumsum long', (x) => T.cumsum(x, 0), [leaf([300, 1], 4, 0.1)], { atol: 5e-3 });
    const z = T.tensor([0.9, -1.2, 0, 1.1, 0.8, 1.3, -0.7, 1.05, 0.95], [3, 3]);
    z.requiresGrad = true;
    await check('prod', (x) => T.prod(x, 1), [z]);
    await check('prod all', (x) => T.prod(x), [leaf([2, 3], 5)]);
    await check('norm 2', (x) => T.norm(x, 2, [1]), [leaf([3, 4], 6)]);
    await check('norm 3', (x) => T.norm(x, 3, [0], true), [leaf([3, 4], 7)]);
    await check('norm 0.5', (x) => T.norm(x, 0.5), [leaf([2, 3], 8)]);
    await check('norm inf', (x) => T.norm(x, Infinity, [1]), [leaf([3, 4], 9)]);
    await check('clone', (x) => T.clone(x), [leaf([2, 3], 10)]);
  });

  it('maskedFill, tril/triu, topk, scatter/scatterAdd, negative-step slice, einsum, conv1d', async () => {
    const mask = T.tensor([1, 0, 0, 1, 1, 0], [2, 3]);
    await check('maskedFill', (x) => T.maskedFill(x, mask, 3), [leaf([2, 3], 11)]);
    await check('tril', (x) => T.tril(x, 1), [leaf([2, 3, 4], 12)]);
    await check('triu', (x) => T.triu(x, -1), [leaf([4, 3], 13)]);
    await check('topk', (x) => T.topk(x, 2, 1).values, [leaf([3, 5], 14)]);
    const index = ints([2, 0, 1, 1, 3, 0], [2, 3]);
    await check('scatter', (x, s) => T.scatter(x, 1, index.reshape([2, 3]).add(0), s), [
      leaf([2, 4], 15),
      leaf([2, 3], 16),
    ]);
    await check('scatterAdd', (x, s) => T.scatterAdd(x, 1, index, s), [leaf([2, 4], 17), leaf([2, 3], 18)]);
    await check('slice negative', (x) => T.slice(x, [{ start: 4, end: 0, step: -2 }, { step: -1 }]), [
      leaf([5, 3], 19),
    ]);
    await check('einsum', (a, b) => T.einsum('bij,jk->bki', a, b), [leaf([2, 3, 4], 20), leaf([4, 2], 21)]);
    await check('einsum diagonal', (a) => T.einsum('iij->ji', a), [leaf([3, 3, 2], 22)]);
    await check('conv1d', (x, w, b) => T.conv1d(x, w, b, { stride: 2, padding: 1 }), [
      leaf([1, 2, 7], 23),
      leaf([3, 2, 3], 24, 0.5),
      leaf([3], 25),
    ]);
  });
});
