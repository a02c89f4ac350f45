import { inspect } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import * as T from '../src/index.js';
import { TORCH_REPR } from './tensor-print.expected.js';

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

// The same tensors as TORCH_REPR's, built here (float32 arithmetic matches: each value is one rounding).
const cases: Record<string, () => T.Tensor> = {
  mixed: () => T.tensor([1.5, -2.25, 3, 4, 5, 6.125], [2, 3]),
  integral: () => T.tensor([1, 2, -3], [3]),
  sci: () => T.tensor([1e-5, 1, 1000], [3]),
  int32: () =>
    T.tensor(
      range(12, (i) => i - 5),
      [3, 4],
      'int32',
    ),
  summarised: () =>
    T.tensor(
      range(2000, (i) => Math.fround(i / 7)),
      [2, 1000],
    ),
  three_d: () =>
    T.tensor(
      range(24, (i) => i * 0.5),
      [2, 3, 4],
    ),
  nonfinite: () => T.tensor([NaN, Infinity, -Infinity, 1.5], [4]),
  scalar: () => T.tensor([3.5], []),
  wrapped: () =>
    T.tensor(
      range(30, (i) => Math.fround(i * Math.fround(1.1))),
      [30],
    ),
  big3d: () =>
    T.tensor(
      range(8 * 9 * 20, (i) => ((i % 13) - 6) * 0.25),
      [8, 9, 20],
    ),
};

/** PyTorch's repr with our suffix: dtype without 'torch.', shape when summarised, the device. */
function expected(name: string, t: T.Tensor): string {
  const repr = TORCH_REPR[name]!;
  const body = repr.replace(/, dtype=torch\.\w+\)$/, ')').slice(0, -1);
  const extra = [
    ...(t.size > 1000 ? [`shape=[${t.shape.join(', ')}]`] : []),
    ...(t.dtype === 'float32' ? [] : [`dtype=${t.dtype}`]),
    "device='webgpu'",
  ];
  return `${body}, ${extra.join(', ')})`;
}

describe('tensor text', () => {
  beforeAll(async () => {
    await T.init();
  });

  for (const name of Object.keys(cases)) {
    it(`toStringAsync prints ${name} as PyTorch's repr does`, async () => {
      const t = cases[name]!();
      expect(await t.toStringAsync()).toBe(expected(name, t));
      t.dispose();
    });
  }

  it('names requiresGrad', async () => {
    const t = T.tensor([0.5, -1], [2]);
    t.requiresGrad = true;
    expect(await t.toStringAsync()).toBe("tensor([ 0.5000, -1.0000], device='webgpu', requiresGrad=true)");
  });

  it('sync toString and Node inspect show shape and dtype (values need an async readback)', () => {
    const t = T.tensor(
      range(6, (i) => i),
      [2, 3],
      'int32',
    );
    expect(String(t)).toBe('Tensor([2, 3], int32)');
    expect(inspect(t)).toBe('Tensor([2, 3], int32)');
    expect(inspect({ w: t })).toBe('{ w: Tensor([2, 3], int32) }');
  });
});
