import * as T from '@leffa-webgpu/core';
import type * as TF from '@tensorflow/tfjs-core';
import { type BenchCase, type Profile, randomInput } from '../case.js';

const GROUPS = 32;

/**
 * GroupNorm(32) with affine parameters on UNet-sized activations: memory bound, reported in GB/s of the
 * minimal traffic (forward: read x, write y; backward: read x and g, write dx). tfjs has no group norm: the
 * peer is the composition a tfjs user writes (reshape, moments, normalise, affine); its Node build ships no
 * gradients, so backward compares with PyTorch only.
 */
function groupNormCase(profile: Profile, [n, c, h, w]: [number, number, number, number], backward: boolean): BenchCase {
  const size = n * c * h * w;
  return {
    name: `groupNorm(32) ${n}x${c}x${h}x${w} ${backward ? 'fwd+bwd' : 'fwd'}`,
    profile,
    inputs: () => [
      randomInput([n, c, h, w], 21, 2),
      randomInput([c], 22),
      randomInput([c], 23),
      randomInput([n, c, h, w], 24),
    ],
    bytes: (backward ? 5 : 2) * size * 4,
    ours: ([x, weight, bias, g]) => ({
      run: () => {
        if (!backward) return T.groupNorm(x!, GROUPS, weight, bias, 1e-5);
        const xx = x!.detach();
        const ww = weight!.detach();
        const bb = bias!.detach();
        for (const t of [xx, ww, bb]) t.requiresGrad = true;
        T.groupNorm(xx, GROUPS, ww, bb, 1e-5).backward(g!);
        return T.concat([T.flatten(xx.grad!), ww.grad!, bb.grad!], 0);
      },
    }),
    tfjs: backward
      ? undefined
      : (tf, [x, weight, bias]) => ({
          run: () => {
            const grouped = tf.reshape(x!, [n, GROUPS, (c / GROUPS) * h * w]);
            const { mean, variance } = tf.moments(grouped, 2, true);
            const normed = tf.reshape(tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, 1e-5))), [n, c, h, w]);
            return tf.add(
              tf.mul(normed, tf.reshape(weight!, [1, c, 1, 1])),
              tf.reshape(bias!, [1, c, 1, 1]),
            ) as TF.Tensor;
          },
        }),
    torch: backward
      ? {
          setup: 'x0.requires_grad_(True); x1.requires_grad_(True); x2.requires_grad_(True)',
          run: [
            'x0.grad = None; x1.grad = None; x2.grad = None',
            'with torch.enable_grad():',
            `    F.group_norm(x0, ${GROUPS}, x1, x2, 1e-5).backward(x3)`,
            'return torch.cat([x0.grad.flatten(), x1.grad, x2.grad])',
          ].join('\n'),
        }
      : { run: `return F.group_norm(x0, ${GROUPS}, x1, x2, 1e-5)` },
    tol: 1e-3,
  };
}

export const groupNormCases: BenchCase[] = [
  groupNormCase('ci', [1, 320, 64, 64], false),
  groupNormCase('ci', [1, 320, 64, 64], true),
  groupNormCase('full', [1, 640, 32, 32], false),
  groupNormCase('full', [1, 640, 32, 32], true),
];
