import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { describe, expect, it } from 'vitest';
import { expectClose } from './compare.js';

const OUT = fileURLToPath(new URL('../golden/out/', import.meta.url));

interface CaseSpec {
  name: string;
  op: string;
  attrs: Record<string, unknown>;
  inputs: { requiresGrad: boolean }[];
  outputs: number;
  grads: number[];
  tol?: number;
  gradTol?: number;
}

export type OpAdapter = (inputs: T.Tensor[], attrs: Record<string, any>) => T.Tensor | T.Tensor[];

export interface GoldenGroup {
  cases: CaseSpec[];
  tensors: Map<string, T.HostTensor>;
}

/** Loads a group written by test/golden/generate.py (fails with the command to run when it is missing). */
export function loadGoldenGroup(group: string): GoldenGroup {
  const path = `${OUT}${group}.safetensors`;
  if (!existsSync(path)) {
    throw new Error(`golden file ${path} is missing: run \`npm run golden\` (needs Debian's python3-torch)`);
  }
  const { tensors, metadata } = T.readSafetensors(new Uint8Array(readFileSync(path)), path);
  return { cases: JSON.parse(metadata.cases!) as CaseSpec[], tensors };
}

const host = (g: GoldenGroup, key: string) => {
  const t = g.tensors.get(key);
  if (!t) throw new Error(`golden tensor ${key} missing`);
  return t;
};

/**
 * Replays every case of a golden group as one test: runs the op on the golden inputs, compares its outputs,
 * then backpropagates the golden upstream gradients and compares the input gradients.
 * Tolerance is on the normalised error max|a - e| / max|e| (1e-4 unless the case says otherwise).
 */
export function replayGoldenGroup(group: string, ops: Record<string, OpAdapter>, options: { tol?: number } = {}): void {
  const g = loadGoldenGroup(group);
  describe(`parity: ${group}`, () => {
    for (const c of g.cases) {
      it(c.name, async () => {
        const adapter = ops[c.op];
        if (!adapter) throw new Error(`no adapter for op '${c.op}' (case ${c.name})`);
        const tol = c.tol ?? options.tol ?? 1e-4;
        const gradTol = c.gradTol ?? c.tol ?? options.tol ?? 1e-4;
        const results = T.tidy(() => {
          const inputs = c.inputs.map((spec, i) => {
            const h = host(g, `${c.name}.in${i}`);
            const t = T.tensor(h.data, h.shape, h.data instanceof Int32Array ? 'int32' : 'float32');
            t.requiresGrad = spec.requiresGrad;
            return t;
          });
          const raw = adapter(inputs, c.attrs);
          const outs = Array.isArray(raw) ? raw : [raw];
          const withGrad = outs.map((o, j) => [o, g.tensors.get(`${c.name}.gout${j}`)] as const).filter(([, go]) => go);
          if (c.grads.length > 0) {
            const loss = withGrad
              .map(([o, go]) => T.sum(T.mul(o, T.tensor(go!.data, go!.shape))))
              .reduce((a, b) => T.add(a, b));
            loss.backward();
          }
          const grads = c.grads.map((i) => inputs[i]!.grad ?? T.zerosLike(inputs[i]!));
          return { inputs, outs, grads };
        });
        expect(results.outs.length, `${c.name}: number of outputs`).toBe(c.outputs);
        for (const [j, o] of results.outs.entries()) {
          const e = host(g, `${c.name}.out${j}`);
          expect([...o.shape], `${c.name}: shape of output ${j}`).toEqual(e.shape);
          expectClose(await o.data(), e.data, tol, `${c.name} output ${j}`);
        }
        for (const [k, i] of c.grads.entries()) {
          expectClose(
            await results.grads[k]!.data(),
            host(g, `${c.name}.grad${i}`).data,
            gradTol,
            `${c.name} grad of input ${i}`,
          );
        }
        T.dispose(results);
      });
    }
  });
}
