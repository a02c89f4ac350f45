import * as T from '@leffa-webgpu/core';
import { schpCyclicalLR } from '@leffa-webgpu/models';
import { beforeAll } from 'vitest';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

/** Row k of a stacked tensor, reshaped to `shape`. */
const row = (stacked: T.Tensor, k: number, shape: readonly number[]) => T.reshape(T.narrow(stacked, 0, k, 1), shape);

const SCHEDULES: Record<string, (o: any) => T.optim.LRSchedule> = {
  constant: (o) => T.optim.constantLR(o.baseLr, o),
  cosineAnnealing: (o) => T.optim.cosineAnnealingLR(o),
  warmupCosine: (o) => T.optim.warmupCosineLR(o),
  schp: (o) => schpCyclicalLR(o),
};

const OPS: Record<string, OpAdapter> = {
  // Runs `steps` optimizer steps on parameters inputs[0, 2, ...] with the stacked gradients inputs[1, 3, ...].
  optimizer: (inputs, a) => {
    const n = inputs.length / 2;
    const params = Array.from({ length: n }, (_, i) => inputs[2 * i]!);
    const initial = params.map((p) => T.add(p, 0));
    const groups = (a.groups as { params: number[] }[]).map(({ params: idx, ...overrides }) => ({
      params: idx.map((i) => params[i]!),
      ...overrides,
    }));
    const opt =
      a.optimizer === 'sgd'
        ? new T.SGD(groups, a.defaults)
        : a.optimizer === 'adam'
          ? new T.Adam(groups, a.defaults)
          : new T.AdamW(groups, a.defaults);
    const skip = new Set((a.skip as number[][]).map(([k, i]) => `${k}:${i}`));
    for (let k = 0; k < a.steps; k++) {
      if (a.lrScales) opt.lr = a.defaults.lr * a.lrScales[k];
      params.forEach((p, i) => {
        p.grad = skip.has(`${k}:${i}`) ? null : row(inputs[2 * i + 1]!, k, p.shape);
      });
      opt.step();
    }
    // State dicts number parameters in group order.
    const order = (a.groups as { params: number[] }[]).flatMap((g) => g.params);
    const state = opt.stateDict().tensors;
    return params.flatMap((p, i) => [
      p,
      T.sub(p, initial[i]!),
      ...(a.state as string[]).map((name) => state.get(`state.${order.indexOf(i)}.${name}`) ?? T.zerosLike(p)),
    ]);
  },
  // Gradients are the inputs; parameters listed in noGrad have none and keep their input unchanged.
  clip_grad_norm: (grads, a) => {
    const params = grads.map((g, i) => {
      const p = T.zerosLike(g);
      p.grad = (a.noGrad as number[]).includes(i) ? null : g;
      return p;
    });
    const norm = T.optim.clipGradNorm(params, a.maxNorm, a.normType === 'inf' ? Infinity : a.normType);
    // Aliases: disposing a parameter disposes its .grad object, not the storage the alias holds.
    return [...params.map((p, i) => p.grad?.alias() ?? grads[i]!), norm];
  },
  // The parameter takes the values P[0], P[1], ... with one EMA update after each.
  ema: ([p0, P], a) => {
    const p = T.add(p0!, 0);
    const ema = new T.EMA([p], {
      decay: a.decay,
      minDecay: a.minDecay,
      updateAfterStep: a.updateAfterStep,
      warmup: a.warmup ?? false,
    });
    for (let k = 0; k < P!.shape[0]!; k++) {
      p.assign(row(P!, k, p.shape));
      ema.update();
    }
    return ema.stateDict().tensors.get('0')!;
  },
  schedule: (_inputs, a) => {
    const schedule = SCHEDULES[a.kind]!(a.options);
    return T.tensor(Array.from({ length: a.steps }, (_, k) => schedule(k)));
  },
};

beforeAll(async () => {
  await T.init();
});

replayGoldenGroup('optim', OPS);
