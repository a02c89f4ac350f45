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

  it('computes every tile when the broadcast kernel runs several per workgroup, ragged edges included', async () => {
    if (!device.hasSubgroups) return;
    T.setMatmulVariant('broadcast');
    // [batch, M, N, K]: 1, 2 and 4 tiles per workgroup (broadcastSpan), tile counts not divisible by the span,
    // M and N off the 8 x 32 tile, K off the 8-deep block; N % 4 == 0 takes the vec4 stores.
    const cases: [number, number, number, number][] = [
      [3, 21, 36, 5],
      [7, 37, 68, 12],
      [9, 45, 140, 12],
      [7, 53, 196, 19],
      [11, 45, 30, 9],
    ];
    for (const [batch, M, N, K] of cases) {
      const { span } = matmulGrid('broadcast', M, N, batch);
      const a = Array.from({ length: batch * M * K }, (_, i) => Math.sin(i * 0.37) * 0.9);
      const b = Array.from({ length: batch * K * N }, (_, i) => Math.cos(i * 0.53) * 0.7);
      for (const transB of [false, true]) {
        const bt = T.tensor(b, transB ? [batch, N, K] : [batch, K, N]);
        const out = T.matmul(T.tensor(a, [batch, M, K]), transB ? T.transpose(bt, 1, 2) : bt);
        const got = await out.data();
        for (let p = 0; p < batch; p++)
          for (let m = 0; m < M; m++)
            for (let n = 0; n < N; n++) {
              let want = 0;
              for (let k = 0; k < K; k++)
                want += a[(p * M + m) * K + k]! * b[transB ? (p * N + n) * K + k : (p * K + k) * N + n]!;
              const at = (p * M + m) * N + n;
              if (Math.abs(got[at]! - want) > 1e-4)
                throw new Error(
                  `[${batch}, ${M}, ${N}, ${K}] span ${span} transB ${transB}: C[${p}, ${m}, ${n}] ${got[at]} != ${want}`,
                );
            }
      }
    }
    expect(cases.map(([batch, M, N]) => matmulGrid('broadcast', M, N, batch).span)).toEqual([1, 2, 4, 4, 2]);
  });

  const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 1.3);
  /** a [batch, M, K] times b [batch, N, K] transposed, on the host: [batch, M, N] row-major. */
  const productBT = (a: number[], b: number[], batch: number, M: number, N: number, K: number) => {
    const c = new Array<number>(batch * M * N).fill(0);
    for (let q = 0; q < batch; q++)
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++)
          for (let k = 0; k < K; k++) c[(q * M + m) * N + n]! += a[(q * M + m) * K + k]! * b[(q * N + n) * K + k]!;
    return c;
  };

  for (const variant of variants) {
    it(`applies the softmax backward as the '${variant}' kernel stores the product`, async () => {
      if (variant === 'broadcast' && !device.hasSubgroups) return;
      T.setMatmulVariant(variant);
      // [batch, M, N, K]: ragged tiles, a K remainder, N with and without the vec4 stores; B transposed as dO v^T.
      for (const [batch, M, N, K] of [
        [3, 13, 20, 9],
        [2, 37, 18, 12],
      ] as const) {
        const [a, b, p, d] = [
          values(batch * M * K, 1),
          values(batch * N * K, 2),
          values(batch * M * N, 3),
          values(batch * M, 4),
        ];
        const scale = 0.37;
        const out = T.gemm(
          T.tensor(a, [batch, M, K]),
          T.tensor(b, [batch, N, K]),
          { batch, M, N, K },
          { transB: true, softmaxGrad: { probs: T.tensor(p, [batch, M, N]), delta: T.tensor(d, [batch, M]), scale } },
        );
        const got = await out.data();
        productBT(a, b, batch, M, N, K).forEach((dot, at) =>
          expect(got[at]).toBeCloseTo(scale * p[at]! * (dot - d[Math.floor(at / N)]!), 4),
        );
      }
    });
  }

  for (const variant of variants) {
    it(`scales the product as the '${variant}' kernel stores it`, async () => {
      if (variant === 'broadcast' && !device.hasSubgroups) return;
      T.setMatmulVariant(variant);
      const [batch, M, N, K] = [2, 11, 20, 13];
      const [a, b] = [values(batch * M * K, 7), values(batch * N * K, 8)];
      const out = T.gemm(
        T.tensor(a, [batch, M, K]),
        T.tensor(b, [batch, N, K]),
        { batch, M, N, K },
        { transB: true, scale: -0.3 },
      );
      const got = await out.data();
      productBT(a, b, batch, M, N, K).forEach((dot, at) => expect(got[at]).toBeCloseTo(-0.3 * dot, 4));
    });
  }

  it("sums op(A)'s rows alongside the broadcast product (a Linear layer's bias gradient)", async () => {
    if (!device.hasSubgroups) return;
    T.setMatmulVariant('broadcast');
    // A is [K, M] (transA): M off the 8-row tile, K with a remainder, N over several column tiles (only the first
    // writes the sums), and enough tiles for several per workgroup.
    for (const [M, N, K] of [
      [13, 36, 19],
      [301, 70, 8],
      [5, 4, 3],
    ] as const) {
      const [a, b] = [values(K * M, 5), values(K * N, 6)];
      const sums = T.full([M], Number.NaN);
      const out = T.gemm(
        T.tensor(a, [K, M]),
        T.tensor(b, [K, N]),
        { batch: 1, M, N, K },
        { transA: true, rowSumsA: sums },
      );
      const [got, c] = [await sums.data(), await out.data()];
      for (let m = 0; m < M; m++) {
        let want = 0;
        for (let k = 0; k < K; k++) want += a[k * M + m]!;
        expect(got[m], `M ${M} N ${N} K ${K}, row ${m}`).toBeCloseTo(want, 4);
      }
      let c0 = 0;
      for (let k = 0; k < K; k++) c0 += a[k * M + M - 1]! * b[k * N + N - 1]!;
      expect(c[M * N - 1]).toBeCloseTo(c0, 4);
    }
    expect(() =>
      T.gemm(T.zeros([6]), T.zeros([6]), { batch: 1, M: 2, N: 3, K: 2 }, { rowSumsA: T.zeros([2]) }),
    ).toThrow(/gemm: rowSumsA needs transA/);
  });

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

  // Heads inside tokens [B, rows, heads * d]: each head's matrix has rows heads * d apart and starts d further on.
  for (const variant of variants) {
    it(`reads and writes operands laid out as heads inside tokens with the '${variant}' kernel`, async () => {
      if (variant === 'broadcast' && !device.hasSubgroups) return;
      T.setMatmulVariant(variant);
      for (const [B, H, N, M, D] of [
        [2, 3, 13, 9, 8],
        [2, 2, 11, 7, 5],
      ] as const) {
        const tokens = (rows: number, d: number) => ({ ld: H * d, stride: rows * H * d, headStride: d });
        const split = (x: T.Tensor, rows: number, d: number) => T.permute(T.reshape(x, [B, rows, H, d]), [0, 2, 1, 3]);
        const merge = (x: T.Tensor, rows: number, d: number) => T.reshape(T.permute(x, [0, 2, 1, 3]), [B, rows, H * d]);
        const q = leaf(B * N * H * D, [B, N, H * D], 1);
        const k = leaf(B * M * H * D, [B, M, H * D], 2);
        const p = leaf(B * H * N * M, [B, H, N, M], 3);
        const dims = { batch: B * H, heads: H };
        const close = async (got: T.Tensor, want: T.Tensor, what: string) => {
          const [g, w] = await Promise.all([got.data(), want.data()]);
          expect(g.length, what).toBe(w.length);
          expect(
            g.reduce((m, x, i) => Math.max(m, Math.abs(x - w[i]!)), 0),
            `${what}, ${variant}, D ${D}`,
          ).toBeLessThan(1e-5);
        };
        // Scores q_h k_h^T: A and B read in place.
        const s = T.gemm(
          q,
          k,
          { ...dims, M: N, N: M, K: D },
          {
            transB: true,
            layoutA: tokens(N, D),
            layoutB: tokens(M, D),
          },
        );
        await close(s, T.matmul(split(q, N, D), T.transpose(split(k, M, D))), 'q k^T');
        // P_h k_h written into the token layout.
        const o = T.gemm(p, k, { ...dims, M: N, N: D, K: M }, { layoutB: tokens(M, D), layoutC: tokens(N, D) }, [
          B,
          N,
          H * D,
        ]);
        await close(o, merge(T.matmul(p, split(k, M, D)), N, D), 'P k');
        // P_h^T q_h: A transposed, B and C in the token layout.
        const t = T.gemm(
          p,
          q,
          { ...dims, M, N: D, K: N },
          {
            transA: true,
            layoutB: tokens(N, D),
            layoutC: tokens(M, D),
          },
          [B, M, H * D],
        );
        await close(t, merge(T.matmul(T.transpose(p), split(q, N, D)), M, D), 'P^T q');
      }
    });
  }

  it('refuses a layout that reaches past its operand', () => {
    const q = T.zeros([2, 5, 12]);
    expect(() =>
      T.gemm(
        q,
        q,
        { batch: 6, heads: 3, M: 5, N: 5, K: 4 },
        {
          transB: true,
          layoutA: { ld: 12, stride: 60, headStride: 5 },
        },
      ),
    ).toThrow(
      'gemm: operand A [2, 5, 12] holds 120 elements, but 2 x 3 matrices of 5 x 4 at ld 12, stride 60, head stride 5 reach element 121',
    );
    expect(() => T.gemm(q, q, { batch: 4, heads: 3, M: 5, N: 5, K: 4 })).toThrow(
      'gemm: 4 batch entries in groups of 3 heads: expected heads to divide the batch',
    );
  });

  it('folds huge launches over the grid and rejects impossible ones', () => {
    const { grid, tilesM, tilesN, span } = matmulGrid('broadcast', 65536 * 8, 320, 1);
    expect([tilesM, tilesN, span]).toEqual([65536, 10, 4]);
    expect(grid[0] * grid[1] * grid[2] * span).toBeGreaterThanOrEqual(tilesM * tilesN);
    expect(Math.max(...grid)).toBeLessThanOrEqual(65535);
    expect(MATMUL_TILES.tiled).toEqual({ m: 64, n: 64 });
    expect(() => matmulGrid('broadcast', 2 ** 31, 2 ** 20, 65535)).toThrow(
      /matmul: 65535 x 2147483648x1048576 output needs .* workgroups, too many for one dispatch/,
    );
  });
});
