import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

/*
 * Broadcasting elementwise ops run four outputs per invocation when the innermost run is a multiple of 4 and
 * each input runs along it (unit stride) or is constant along it (a per-row or per-channel operand); the values
 * are those of the one-per-invocation kernel, for float32 and float16 storage.
 */

let device: T.Device;
beforeAll(async () => {
  device = await T.init();
});

const sizeOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const values = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 1.3 + seed) * 4 + (i % 3) * 0.25));

/** a (op) b with numpy broadcasting, each result rounded to float32 as the kernel's f32 arithmetic does. */
function reference(a: number[], as: number[], b: number[], bs: number[], op: (x: number, y: number) => number) {
  const rank = Math.max(as.length, bs.length);
  const pa = [...Array(rank - as.length).fill(1), ...as];
  const pb = [...Array(rank - bs.length).fill(1), ...bs];
  const out = pa.map((d, i) => Math.max(d, pb[i]!));
  const at = (data: number[], shape: number[], c: number[]) =>
    data[c.reduce((o, v, d) => o * shape[d]! + (shape[d] === 1 ? 0 : v), 0)]!;
  return Array.from({ length: sizeOf(out) }, (_, i) => {
    const c = out.map((_, d) => Math.floor(i / sizeOf(out.slice(d + 1))) % out[d]!);
    return Math.fround(op(at(a, pa, c), at(b, pb, c)));
  });
}

async function run(fn: () => T.Tensor) {
  let out: T.Tensor | undefined;
  const times = await device.profile(() => {
    out = fn();
  });
  return { keys: [...times.keys()].filter((k) => k.startsWith('ew')), values: [...(await out!.float().data())] };
}

describe.each(['float32', 'float16'] as const)('broadcasting elementwise ops in vec4 units (%s)', (dtype) => {
  const make = (shape: number[], seed: number) => {
    const t = T.tensor(values(sizeOf(shape), seed), shape);
    return dtype === 'float16' ? t.half() : t;
  };
  const host = async (t: T.Tensor) => [...(await t.float().data())];

  it.each([
    [[3, 5, 8], [3, 5, 1], true],
    [[3, 5, 8], [8], true],
    [[2, 4, 6, 4], [4, 1, 1], true],
    [[3, 8, 4], [3, 1, 4], true],
    [[3, 5, 6], [3, 5, 1], false],
    [[3, 6, 2], [3, 1, 2], false],
  ])('%j with %j (vec4: %s)', async (as, bs, vec) => {
    if (dtype === 'float16' && !device.report.features.includes('shader-f16')) return;
    const a = make(as, 1);
    const b = make(bs, 2);
    for (const [fn, op] of [
      [T.add, (x: number, y: number) => x + y],
      [T.mul, (x: number, y: number) => x * y],
    ] as const) {
      const r = await run(() => fn(a, b));
      const want = reference(await host(a), as, await host(b), bs, op);
      if (dtype === 'float32') expect(r.values).toEqual(want);
      else r.values.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 1));
      expect(r.keys.length).toBe(1);
      expect(r.keys[0]!.startsWith(vec ? 'ew4b:' : 'ew:'), r.keys[0]).toBe(true);
    }
  });
});
