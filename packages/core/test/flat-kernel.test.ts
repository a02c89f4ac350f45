// flatKernel's entry point on the device: the flat index, its guard, per-workgroup indices and tile strides.
import * as T from '@leffa-webgpu/core';
import { fields, flatKernel, grid1d, gridGroups, readOnly, readWrite } from '@leffa-webgpu/kernels-wgsl';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

describe('flatKernel', () => {
  it('runs the body once per index below params.n (n not a multiple of the workgroup size)', async () => {
    const axpy = flatKernel({
      key: 'test:flat:axpy',
      buffers: [readOnly('x'), readWrite('y')],
      uniforms: [...fields('u32', 'n'), ...fields('f32', 'a')],
      workgroupSize: 64,
      body: /* wgsl */ `
  y[i] = params.a * x[i] + y[i];`,
    });
    const n = 1000;
    const x = T.arange(0, 1100);
    const y = T.ones([1100]);
    T.launch(axpy, [x], [y], { n, a: 2 }, grid1d(n, 64));
    const out = await y.data();
    // Past n the guard returned: y keeps its ones.
    expect(Array.from(out)).toEqual(Array.from({ length: 1100 }, (_, k) => (k < n ? 2 * k + 1 : 1)));
    T.dispose([x, y]);
  });

  it('counts workgroups with per: workgroup, and honours a named index, a custom bound and a stride', async () => {
    const rows = flatKernel({
      key: 'test:flat:rows',
      buffers: [readWrite('out')],
      uniforms: fields('u32', 'rows'),
      workgroupSize: 32,
      per: 'workgroup',
      index: 'row',
      bound: 'params.rows',
      body: /* wgsl */ `
  if (lid == 0u) { out[row] = f32(row) + 0.5; }`,
    });
    const out = T.zeros([8]);
    T.launch(rows, [], [out], { rows: 5 }, gridGroups(8));
    expect(Array.from(await out.data())).toEqual([0.5, 1.5, 2.5, 3.5, 4.5, 0, 0, 0]);

    // Each invocation handles `base` and base + 4; workgroups start 8 apart.
    const tiled = flatKernel({
      key: 'test:flat:tiled',
      buffers: [readWrite('out')],
      uniforms: fields('u32', 'n'),
      workgroupSize: 4,
      stride: 8,
      index: 'base',
      bound: null,
      body: /* wgsl */ `
  for (var k = 0u; k < 2u; k++) { let i = base + 4u * k; if (i < params.n) { out[i] = f32(i); } }`,
    });
    const seq = T.zeros([20]);
    T.launch(tiled, [], [seq], { n: 18 }, grid1d(18, 8));
    expect(Array.from(await seq.data())).toEqual(Array.from({ length: 20 }, (_, k) => (k < 18 ? k : 0)));
    T.dispose([out, seq]);
  });
});
