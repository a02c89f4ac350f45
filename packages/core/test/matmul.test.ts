import * as T from '@leffa-webgpu/core';
import { MATMUL_TILES, matmulGrid } from '@leffa-webgpu/kernels-wgsl';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

let device: T.Device;
beforeAll(async () => {
  device = await T.init();
});
afterEach(() => T.setMatmulVariant(null));

const leaf = (n: number, shape: number[], seed: number) => {
  const t = T.tensor(
    Array.from({ length: n }, (_, i) => Math.sin(i * 1.9 + seed) * 0.8 + 0.1),
    shape,
  );
  t.requiresGrad = true;
  return t;
};

describe('matmul kernels', () => {
  // scripts/gpu-check.sh forces a kernel for whole runs (LEFFA_FORCE_KERNELS); the adapter's choice is then moot.
  it.skipIf(Boolean(process.env.LEFFA_FORCE_KERNELS))('picks the kernel from the adapter', () => {
    const expected = !device.report.isCpu ? 'tiled' : device.hasSubgroups ? 'broadcast' : 'register';
    // lavapipe reports subgroups of 8, enough for the broadcast kernel's 8 lanes.
    expect(T.matmulVariantFor(device)).toBe(expected);
    T.setMatmulVariant('tiled');
    expect(T.matmulVariantFor(device)).toBe('tiled');
    T.setMatmulVariant(null);
    expect(T.matmulVariantFor(device)).toBe(expected);
  });

  const variants: T.MatmulVariant[] = ['tiled', 'register', 'broadcast'];
  for (const variant of variants) {
    it(`passes finite-difference checks with the '${variant}' kernel`, async () => {
      if (variant === 'broadcast' && !device.hasSubgroups) return;
      T.setMatmulVariant(variant);
      // Batched with a broadcast operand: backward runs the A^T and B^T kernels and a batch reduction.
      const a = leaf(2 * 3 * 9, [2, 3, 9], 1);
      const b = leaf(9 * 5, [9, 5], 2);
      const r = await T.gradcheck((x, y) => T.matmul(x, y), [a, b]);
      expect(r.ok, JSON.stringify(r.worst)).toBe(true);
      const x = leaf(3 * 10, [3, 10], 3);
      const w = leaf(4 * 10, [4, 10], 4);
      const bias = leaf(4, [4], 5);
      const rl = await T.gradcheck((p, q, s) => T.linear(p, q, s), [x, w, bias]);
      expect(rl.ok, JSON.stringify(rl.worst)).toBe(true);
    });
  }

  it('returns zeros (plus bias) when K is 0', async () => {
    const out = T.gemm(
      T.zeros([0]),
      T.zeros([0]),
      { batch: 1, M: 2, N: 3, K: 0 },
      { bias: T.tensor([1, 2, 3]) },
      [2, 3],
    );
    expect(Array.from(await out.data())).toEqual([1, 2, 3, 1, 2, 3]);
  });

  it('folds huge launches over the grid and rejects impossible ones', () => {
    const { grid, tilesM, tilesN } = matmulGrid('broadcast', 65536 * 8, 320, 1);
    expect([tilesM, tilesN]).toEqual([65536, 10]);
    expect(grid[0] * grid[1] * grid[2]).toBeGreaterThanOrEqual(tilesM * tilesN);
    expect(Math.max(...grid)).toBeLessThanOrEqual(65535);
    expect(MATMUL_TILES.tiled).toEqual({ m: 64, n: 64 });
    expect(() => matmulGrid('broadcast', 2 ** 31, 2 ** 20, 65535)).toThrow(
      /matmul: 65535 x 2147483648x1048576 output needs .* workgroups, too many for one dispatch/,
    );
  });
});
