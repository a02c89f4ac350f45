import * as T from '@leffa-webgpu/core';
import { type BenchCase, randomInput } from '../case.js';

const TENSORS = 10;
const EACH = 1_000_000;
const LR = 1e-3;

/**
 * One AdamW step over 10M parameters held as ten 1M tensors (weight decay 0, so tfjs's Adam computes the
 * same update). Each implementation's first step is checked (the first tensor after one step from the
 * same state); later timed steps continue from there. Memory bound: p, g, m, v read, p, m, v written.
 */
export const adamwCase: BenchCase = {
  name: `AdamW step ${(TENSORS * EACH) / 1e6}M params (${TENSORS} x ${EACH / 1e6}M)`,
  profile: 'ci',
  inputs: () => [randomInput([TENSORS, EACH], 51), randomInput([TENSORS, EACH], 52, 0.1)],
  bytes: 7 * TENSORS * EACH * 4,
  ours: ([p, g]) => {
    const params = Array.from({ length: TENSORS }, (_, i) => {
      const t = T.keep(T.mul(T.reshape(T.narrow(p!, 0, i, 1), [EACH]), 1));
      t.requiresGrad = true;
      t.grad = T.keep(T.mul(T.reshape(T.narrow(g!, 0, i, 1), [EACH]), 1));
      return t;
    });
    const optimizer = new T.AdamW(params, { lr: LR, weightDecay: 0, eps: 1e-8 });
    return {
      run: () => {
        optimizer.step();
        return T.mul(params[0]!, 1);
      },
      dispose: () => {
        T.dispose(params.map((t) => t.grad!));
        T.dispose(params);
        optimizer.dispose();
      },
    };
  },
  tfjs: (tf, [p, g]) => {
    const vars = Array.from({ length: TENSORS }, (_, i) =>
      tf.variable(tf.reshape(tf.slice(p!, [i, 0], [1, EACH]), [EACH]), true, `p${i}`),
    );
    const grads = Array.from({ length: TENSORS }, (_, i) => tf.reshape(tf.slice(g!, [i, 0], [1, EACH]), [EACH]));
    const optimizer = tf.train.adam(LR, 0.9, 0.999, 1e-8);
    const named = vars.map((v, i) => ({ name: v.name, tensor: grads[i]! }));
    return {
      run: () => {
        optimizer.applyGradients(named);
        return tf.mul(vars[0]!, 1);
      },
      dispose: () => {
        optimizer.dispose();
        tf.dispose([...vars, ...grads]);
      },
    };
  },
  torch: {
    setup: [
      `ps = [x0[i].clone().requires_grad_(True) for i in range(${TENSORS})]`,
      `for p, gr in zip(ps, x1): p.grad = gr.clone()`,
      `opt = torch.optim.AdamW(ps, lr=${LR}, weight_decay=0.0, eps=1e-8)`,
    ].join('\n'),
    run: 'opt.step()\nreturn ps[0].detach().clone()',
  },
  tol: 1e-4,
};
