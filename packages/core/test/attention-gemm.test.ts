import * as T from '@leffa-webgpu/core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { attentionBackwardGemm, attentionForwardGemm } from '../src/ops/attention-gemm.js';

let device: T.Device;
beforeAll(async () => {
  device = await T.init();
});
afterEach(() => T.setMatmulVariant(null));

const seeded = (shape: number[], seed: number) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return T.tensor(
    Array.from({ length: n }, (_, i) => Math.sin(i * 1.37 + seed) * 0.9),
    shape,
  );
};

/** dq, dk, dv of sum(attention(q, k, v) * g) through autograd, on the matmul variant given. */
async function grads(variant: T.MatmulVariant, shapes: number[][]): Promise<Float32Array[]> {
  T.setMatmulVariant(variant);
  const [q, k, v, g] = shapes.map((s, i) => seeded(s, i + 1)) as [T.Tensor, T.Tensor, T.Tensor, T.Tensor];
  for (const t of [q, k, v]) t.requiresGrad = true;
  T.sum(T.mul(T.attention(q, k, v), g)).backward();
  const out = await Promise.all([q.grad!.data(), k.grad!.data(), v.grad!.data()]);
  T.dispose([q, k, v, g]);
  return out;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

describe('attention on the batched matmul', () => {
  // q, k, v, dO: odd sizes with Dv != D, and a v shared by every head (the flow field's key grid).
  const cases = {
    'odd sizes, Dv != D': [
      [2, 3, 37, 12],
      [2, 3, 29, 12],
      [2, 3, 29, 5],
      [2, 3, 37, 5],
    ],
    'one v shared by every head': [
      [2, 3, 37, 12],
      [2, 3, 29, 12],
      [1, 1, 29, 2],
      [2, 3, 37, 2],
    ],
  };
  it.runIf(() => device.hasSubgroups).each(Object.entries(cases))(
    'matches the FlashAttention-2 kernels (%s)',
    async (_, shapes) => {
      const gemmPath = await grads('broadcast', shapes);
      const kernels = await grads('register', shapes);
      expect(gemmPath[2]!.length).toBe(shapes[2]!.reduce((a, b) => a * b, 1));
      for (let i = 0; i < 3; i++) expect(maxDiff(gemmPath[i]!, kernels[i]!), `gradient ${i}`).toBeLessThan(2e-5);
      // And the broadcast variant did take the matmul path, forward (training) and backward, not the attention kernels.
      if (device.report.features.includes('timestamp-query')) {
        const times = await device.profile(() => grads('broadcast', shapes).then(() => undefined));
        const keys = [...times.keys()];
        expect(keys.some((k) => k.startsWith('matmul:'))).toBe(true);
        expect(keys.filter((k) => k.startsWith('attn:'))).toEqual([]);
      }
    },
  );

  it('gives the same gradients in any blocking of heads and query rows', async () => {
    const [B, H, N, M, D, Dv] = [2, 3, 23, 17, 8, 6];
    const q = seeded([B, H, N, D], 1);
    const k = seeded([B, H, M, D], 2);
    const v = seeded([B, H, M, Dv], 3);
    const g = seeded([B, H, N, Dv], 4);
    const out = T.attentionMaterialized(q, k, v);
    const scale = 1 / Math.sqrt(D);
    const s = T.mul(T.matmul(q, T.transpose(k)), scale);
    const lse = T.log(T.sum(T.exp(s), -1));
    const delta = T.sum(T.mul(g, out), -1);
    const inputs = { q, k, v, g, lse, delta, scale, want: [true, true, true] as [boolean, boolean, boolean] };
    const whole = await Promise.all(attentionBackwardGemm(inputs).map((t) => t!.data()));
    // 5 rows per block (query rows split, one head at a time) and 2 heads of all rows per block.
    for (const rows of [5, 2 * N]) {
      const blocked = await Promise.all(attentionBackwardGemm(inputs, rows * M * 4).map((t) => t!.data()));
      for (let i = 0; i < 3; i++)
        expect(maxDiff(blocked[i]!, whole[i]!), `rows ${rows}, gradient ${i}`).toBeLessThan(1e-6);
    }
    // Against the materialised path's autograd.
    for (const t of [q, k, v]) t.requiresGrad = true;
    T.sum(T.mul(T.attentionMaterialized(q, k, v), g)).backward();
    const ref = await Promise.all([q.grad!.data(), k.grad!.data(), v.grad!.data()]);
    for (let i = 0; i < 3; i++)
      expect(maxDiff(whole[i]!, ref[i]!), `gradient ${i} against autograd`).toBeLessThan(2e-5);
    // From the forward's probability blocks instead of the log-sum-exp, in the same blockings.
    for (const rows of [5, 2 * N, N * 6]) {
      const blockBytes = rows * M * 4;
      const forward = attentionForwardGemm(q, k, v, scale, blockBytes);
      expect(maxDiff(await forward.out.data(), await out.data()), `rows ${rows}, forward`).toBeLessThan(1e-6);
      const { lse: _, ...rest } = inputs;
      const fromProbs = await Promise.all(
        attentionBackwardGemm({ ...rest, probs: forward.probs }, blockBytes).map((t) => t!.data()),
      );
      for (let i = 0; i < 3; i++)
        expect(maxDiff(fromProbs[i]!, whole[i]!), `rows ${rows}, gradient ${i} from P`).toBeLessThan(1e-6);
      expect(() => attentionBackwardGemm({ ...rest, probs: forward.probs.slice(1) }, blockBytes)).toThrow(
        `attentionBackwardGemm: needs lse or the forward's ${forward.probs.length} probability blocks, got ${forward.probs.length - 1}`,
      );
    }
    // Only what is asked for.
    const onlyQ = attentionBackwardGemm({ ...inputs, want: [true, false, false] });
    expect(onlyQ[1]).toBeNull();
    expect(onlyQ[2]).toBeNull();
  });
});
