import * as T from '@leffa-webgpu/core';
import { flowField, keyGridCoordinates } from '@leffa-webgpu/models';
import { type BenchCase, type Profile, randomInput } from '../case.js';

const HEADS = 8;
/** tfjs materialises the score matrix in one buffer; beyond the binding limit (128 MiB here) it cannot run. */
const MAX_SCORE_BYTES = 128 * 2 ** 20;

/**
 * Attention softmax(q k^T / sqrt(d)) v over 8 heads: our flash kernel (no N x M buffer) against our own
 * materialised matmul + softmax + matmul path (the baseline, with its peak memory), tfjs doing the same
 * materialised computation, and PyTorch. `refTokens` > 0 is Leffa's case: target queries attend over
 * [target ; reference] keys.
 */
function attentionCase(profile: Profile, tokens: number, dim: number, refTokens = 0): BenchCase {
  const keys = tokens + refTokens;
  const scoreBytes = HEADS * tokens * keys * 4;
  return {
    name: `attention h${HEADS} d${dim} ${tokens}${refTokens ? ` x [${tokens};${refTokens}] (Leffa concat)` : ' self'}`,
    profile,
    inputs: () => [
      randomInput([1, HEADS, tokens, dim], 31),
      randomInput([1, HEADS, keys, dim], 32),
      randomInput([1, HEADS, keys, dim], 33),
    ],
    flops: 4 * HEADS * tokens * keys * dim,
    ours: ([q, k, v]) => ({ run: () => T.attention(q!, k!, v!) }),
    baseline: {
      label: 'matmul + softmax + matmul',
      impl: ([q, k, v]) => ({ run: () => T.attentionMaterialized(q!, k!, v!) }),
    },
    tfjs:
      scoreBytes <= MAX_SCORE_BYTES
        ? (tf, [q, k, v]) => ({
            run: () => tf.matMul(tf.softmax(tf.mul(tf.matMul(q!, k!, false, true), 1 / Math.sqrt(dim))), v!),
          })
        : undefined,
    torch: { run: `return torch.softmax(x0 @ x1.transpose(-1, -2) * ${1 / Math.sqrt(dim)}, -1) @ x2` },
    tol: 1e-3,
  };
}

/** dq, dk, dv of sum(attention(q, k, v) * g), concatenated; `mask` (zeros) routes the backward to the kernels. */
function attentionGrads(q: T.Tensor, k: T.Tensor, v: T.Tensor, g: T.Tensor, mask?: T.Tensor): T.Tensor {
  const [qq, kk, vv] = [q, k, v].map((t) => {
    const d = t.detach();
    d.requiresGrad = true;
    return d;
  }) as [T.Tensor, T.Tensor, T.Tensor];
  T.attention(qq, kk, vv, mask ? { mask } : {}).backward(g);
  return T.concat(
    [qq, kk, vv].map((t) => T.flatten(t.grad!)),
    0,
  );
}

/**
 * Self-attention forward + backward over 8 heads: the backward on the batched matmul (CPU adapters with the
 * subgroup kernel) against the FlashAttention-2 backward kernels it replaced there (the baseline: a zero mask,
 * which the matmul path does not take, sends the backward to them) and PyTorch's autograd.
 */
function attentionBackwardCase(profile: Profile, tokens: number, dim: number): BenchCase {
  return {
    name: `attention h${HEADS} d${dim} ${tokens} self fwd+bwd`,
    profile,
    inputs: () => [31, 32, 33, 34].map((seed) => randomInput([1, HEADS, tokens, dim], seed)),
    // Forward 2 products, backward 5 (S recomputed, dV, dP, dQ, dK).
    flops: 7 * 2 * HEADS * tokens * tokens * dim,
    ours: ([q, k, v, g]) => ({ run: () => attentionGrads(q!, k!, v!, g!) }),
    baseline: {
      label: 'FlashAttention-2 backward kernels',
      impl: ([q, k, v, g]) => {
        const zeros = T.zeros([tokens]);
        return { run: () => attentionGrads(q!, k!, v!, g!, zeros), dispose: () => zeros.dispose() };
      },
    },
    torch: {
      run: [
        'q, k, v = (t.detach().requires_grad_(True) for t in (x0, x1, x2))',
        'with torch.enable_grad():',
        `    (torch.softmax(q @ k.transpose(-1, -2) * ${1 / Math.sqrt(dim)}, -1) @ v).backward(x3)`,
        'return torch.cat([q.grad.flatten(), k.grad.flatten(), v.grad.flatten()])',
      ].join('\n'),
    },
    tol: 1e-3,
  };
}

/**
 * Leffa's flow field: the head-averaged attention map times the normalised key grid, fused into the flash
 * kernel (a 2-wide value) against materialising the map and multiplying (the baseline and PyTorch).
 */
function flowFieldCase(profile: Profile, grid: number, dim: number): BenchCase {
  const tokens = grid * grid;
  const tau = 2;
  const scale = 1 / Math.sqrt(dim) / tau;
  return {
    name: `flowField h${HEADS} d${dim} ${tokens} x ${tokens} (tau 2)`,
    profile,
    inputs: () => [randomInput([1, HEADS, tokens, dim], 41), randomInput([1, HEADS, tokens, dim], 42)],
    flops: 2 * HEADS * tokens * tokens * (dim + 2),
    ours: ([q, k]) => ({ run: () => flowField(q!, k!, { height: grid, width: grid }, { tau }) }),
    baseline: {
      label: 'attention map (head mean) @ key grid',
      impl: ([q, k]) => ({
        run: () =>
          T.matmul(
            T.attentionMap(q!, k!, { tau, headMean: true }),
            T.reshape(keyGridCoordinates(grid, grid), [1, tokens, 2]),
          ),
      }),
    },
    torch: {
      setup: [
        `lin = torch.linspace(-1, 1, ${grid})`,
        'gy, gx = torch.meshgrid(lin, lin, indexing="ij")',
        'C = torch.stack([gx.flatten(), gy.flatten()], -1)',
      ].join('\n'),
      run: `return torch.softmax(x0 @ x1.transpose(-1, -2) * ${scale}, -1).mean(1) @ C`,
    },
    tol: 1e-3,
  };
}

export const attentionCases: BenchCase[] = [
  attentionCase('ci', 1024, 40),
  attentionCase('full', 1024, 64),
  attentionCase('full', 2048, 40),
  attentionCase('full', 2048, 64),
  attentionCase('full', 4096, 40),
  attentionCase('full', 4096, 64),
  attentionCase('full', 4096, 40, 4096),
  attentionBackwardCase('ci', 1024, 40),
  attentionBackwardCase('full', 3072, 40),
  flowFieldCase('ci', 32, 40),
  flowFieldCase('full', 64, 40),
];
