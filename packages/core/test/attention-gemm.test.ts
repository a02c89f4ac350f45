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

describe('multi-head attention on tokens', () => {
  /** Output and dq, dk, dv of sum(out * g) with the heads split and merged by copies around T.attention. */
  async function splitAndMerge(q: T.Tensor, k: T.Tensor, v: T.Tensor, g: T.Tensor, heads: number) {
    const split = (x: T.Tensor) =>
      T.permute(T.reshape(x, [x.shape[0]!, x.shape[1]!, heads, x.shape[2]! / heads]), [0, 2, 1, 3]);
    const [qs, ks, vs] = [q, k, v].map((x) => x.detach()) as [T.Tensor, T.Tensor, T.Tensor];
    for (const t of [qs, ks, vs]) t.requiresGrad = true;
    const o = T.attention(split(qs), split(ks), split(vs));
    const out = T.reshape(T.permute(o, [0, 2, 1, 3]), g.shape);
    T.sum(T.mul(out, g)).backward();
    return Promise.all([out.data(), qs.grad!.data(), ks.grad!.data(), vs.grad!.data()]);
  }

  // [B, N, M, heads, D, Dv]: vec4-aligned heads, one head, and odd head widths that take the scalar loads.
  const cases: Record<string, number[]> = {
    'aligned heads': [2, 37, 29, 3, 8, 12],
    'one head': [2, 19, 23, 1, 16, 16],
    'odd widths': [2, 21, 11, 3, 5, 7],
  };
  it.each(Object.entries(cases))('reads and writes the heads in place as the copies would (%s)', async (_, dims) => {
    const [B, N, M, heads, D, Dv] = dims as [number, number, number, number, number, number];
    const q = seeded([B, N, heads * D], 1);
    const k = seeded([B, M, heads * D], 2);
    const v = seeded([B, M, heads * Dv], 3);
    const g = seeded([B, N, heads * Dv], 4);
    const [refOut, ...refGrads] = await splitAndMerge(q, k, v, g, heads);
    for (const t of [q, k, v]) t.requiresGrad = true;
    const out = T.multiHeadAttention(q, k, v, { heads });
    // On the subgroup-broadcast matmul a training call takes the in-place path (its own op), elsewhere the copies.
    expect(out.gradFn?.op).toBe(T.matmulVariantFor(device) === 'broadcast' ? 'attention_heads' : 'reshape');
    T.sum(T.mul(out, g)).backward();
    expect(maxDiff(await out.data(), refOut!), 'output').toBeLessThan(1e-6);
    const grads = await Promise.all([q.grad!.data(), k.grad!.data(), v.grad!.data()]);
    for (let i = 0; i < 3; i++) expect(maxDiff(grads[i]!, refGrads[i]!), `gradient ${i}`).toBeLessThan(2e-6);
    // Without gradients (inference) it runs the attention kernels on split heads: the same values.
    const inference = T.noGrad(() => T.multiHeadAttention(q, k, v, { heads }));
    expect(maxDiff(await inference.data(), refOut!), 'inference output').toBeLessThan(1e-6);
  });

  it('names the shapes it expected', () => {
    const q = seeded([2, 5, 12], 1);
    expect(() => T.multiHeadAttention(q, seeded([2, 7, 12], 2), seeded([2, 6, 12], 3), { heads: 3 })).toThrow(
      'multiHeadAttention: expected q [B, N, heads * D], k [B, M, heads * D], v [B, M, heads * Dv] with 3 heads, got [2, 5, 12], [2, 7, 12], [2, 6, 12]',
    );
    expect(() => T.multiHeadAttention(q, q, q, { heads: 5 })).toThrow('with 5 heads, got [2, 5, 12]');
  });
});
