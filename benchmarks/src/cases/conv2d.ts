import * as T from '@leffa-webgpu/core';
import type * as TF from '@tensorflow/tfjs-core';
import { type BenchCase, type Profile, randomInput } from '../case.js';

function convRun(x: T.Tensor, wt: T.Tensor, g: T.Tensor, backward: boolean): T.Tensor {
  if (!backward) return T.conv2d(x, wt, undefined, { padding: 1 });
  const xx = x.detach();
  const ww = wt.detach();
  xx.requiresGrad = true;
  ww.requiresGrad = true;
  T.conv2d(xx, ww, undefined, { padding: 1 }).backward(g);
  return T.concat([T.flatten(xx.grad!), T.flatten(ww.grad!)], 0);
}

/**
 * 3x3 pad-1 convolution (the automatic algorithm choice: Winograd F(4x4) or F(2x2), or the sliding kernel, where they win, else the implicit
 * GEMM, which is also timed as the baseline), NCHW for us and PyTorch; tfjs runs its native NHWC layout (inputs transposed once
 * at setup, the result transposed back only for the check).
 */
function convCase(name: string, profile: Profile, [n, c, h, w]: number[], out: number, backward: boolean): BenchCase {
  const flops = 2 * n! * out * h! * w! * c! * 9 * (backward ? 3 : 1);
  return {
    name: `${name} ${backward ? 'fwd+bwd' : 'fwd'}`,
    profile,
    inputs: () => [
      randomInput([n!, c!, h!, w!], 11),
      randomInput([out, c!, 3, 3], 12, 0.2),
      randomInput([n!, out, h!, w!], 13),
    ],
    flops,
    // Backward: forward plus the input and weight gradients, seeded with g.
    ours: ([x, wt, g]) => ({ run: () => convRun(x!, wt!, g!, backward) }),
    // The implicit GEMM for every product, as before Winograd was chosen automatically.
    baseline: {
      label: 'implicit GEMM (setConvAlgorithm direct)',
      impl: ([x, wt, g]) => ({
        run: () => {
          T.setConvAlgorithm('direct');
          try {
            return convRun(x!, wt!, g!, backward);
          } finally {
            T.setConvAlgorithm(null);
          }
        },
      }),
    },
    tfjs: (tf, [x, wt, g]) => {
      const xh = tf.transpose(x!, [0, 2, 3, 1]) as TF.Tensor4D;
      const wh = tf.transpose(wt!, [2, 3, 1, 0]) as TF.Tensor4D;
      const gh = tf.transpose(g!, [0, 2, 3, 1]) as TF.Tensor4D;
      // Forward and both gradients seeded with g, as ours and PyTorch's backward(g). tfjs-core's Node build
      // ships no gradient registry, so the two backward kernels are called directly.
      const backprop = () => {
        tf.conv2d(xh, wh, 1, 'same');
        const dx = tf.conv2dTranspose(gh, wh, xh.shape, 1, 'same');
        const attrs = { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', dilations: [1, 1], filterShape: wh.shape };
        const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x: xh, dy: gh }, attrs as never) as TF.Tensor4D;
        return [dx, dw];
      };
      return {
        run: () => {
          if (!backward) return tf.conv2d(xh, wh, 1, 'same');
          const [dx, dw] = backprop() as [TF.Tensor4D, TF.Tensor4D];
          return tf.concat([
            tf.reshape(tf.transpose(dx, [0, 3, 1, 2]), [-1]),
            tf.reshape(tf.transpose(dw, [3, 2, 0, 1]), [-1]),
          ]);
        },
        dispose: () => tf.dispose([xh, wh, gh]),
      };
    },
    tfjsToOurs: (tf, o) => (backward ? o : tf.transpose(o, [0, 3, 1, 2])),
    torch: backward
      ? {
          setup: 'x0.requires_grad_(True); x1.requires_grad_(True)',
          run: [
            'x0.grad = None; x1.grad = None',
            'with torch.enable_grad():',
            '    F.conv2d(x0, x1, padding=1).backward(x2)',
            'return torch.cat([x0.grad.flatten(), x1.grad.flatten()])',
          ].join('\n'),
        }
      : { run: 'return F.conv2d(x0, x1, padding=1)' },
    tol: 1e-3,
  };
}

export const conv2dCases: BenchCase[] = [
  convCase('conv2d 1x64x64x64->64', 'ci', [1, 64, 64, 64], 64, false),
  convCase('conv2d 1x64x64x64->64', 'ci', [1, 64, 64, 64], 64, true),
  convCase('conv2d 1x320x32x32->320', 'full', [1, 320, 32, 32], 320, false),
  convCase('conv2d 1x320x32x32->320', 'full', [1, 320, 32, 32], 320, true),
  // An SD1.5 UNet level-1 convolution at a 32x24 latent (a 256x192 image).
  convCase('conv2d 1x320x32x24->320', 'ci', [1, 320, 32, 24], 320, false),
  convCase('conv2d 1x320x32x24->320', 'ci', [1, 320, 32, 24], 320, true),
  convCase('conv2d 1x3x368x368->64', 'ci', [1, 3, 368, 368], 64, false),
  convCase('conv2d 1x3x368x368->64', 'full', [1, 3, 368, 368], 64, true),
];
