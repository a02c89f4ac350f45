import { noGrad } from './grad-mode.js';
import { tensor } from '../forward/creation.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { backward } from './engine.js';

export interface GradcheckOptions {
  /** Finite-difference step. float32 needs a large one; 1e-2 to 1e-3 suits values of order 1. */
  eps?: number;
  /** Allowed |analytic - numeric| <= atol + rtol * |numeric|. */
  atol?: number;
  rtol?: number;
}

export interface GradcheckResult {
  ok: boolean;
  maxAbsError: number;
  /** First mismatch, for the error message. */
  worst?: { input: number; index: number; analytic: number; numeric: number };
}

/**
 * Compares the analytic gradients of sum(fn(inputs) * w) (w a fixed random weighting, so every output
 * element matters) with central finite differences on every element of every input that requires grad.
 * Meant for tiny shapes: it runs fn twice per input element.
 */
export async function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: Tensor[],
  options: GradcheckOptions = {},
): Promise<GradcheckResult> {
  const eps = options.eps ?? 1e-2;
  const atol = options.atol ?? 1e-3;
  const rtol = options.rtol ?? 1e-2;
  const probe = tidy(() => noGrad(() => fn(...inputs)));
  const weightsData = Float32Array.from({ length: probe.size }, (_, i) => Math.sin(i * 1.7 + 0.3) + 1.1);
  const weights = tensor(weightsData, probe.shape);
  probe.dispose();

  const objective = (...xs: Tensor[]) =>
    fn(...xs)
      .mul(weights)
      .sum();
  for (const x of inputs) {
    x.grad?.dispose();
    x.grad = null;
  }
  tidy(() => backward(objective(...inputs)));
  const analytic = await Promise.all(inputs.map((x) => (x.requiresGrad && x.grad ? x.grad.data() : null)));

  let maxAbsError = 0;
  let worst: GradcheckResult['worst'];
  let ok = true;
  for (const [k, x] of inputs.entries()) {
    if (!x.requiresGrad) continue;
    const base = (await x.data()) as Float32Array;
    // All perturbed evaluations are recorded before a single readback.
    const values = noGrad(() =>
      tidy(() => {
        const outs: Tensor[] = [];
        for (let i = 0; i < base.length; i++) {
          for (const sign of [1, -1]) {
            const moved = Float32Array.from(base);
            moved[i]! += sign * eps;
            const xs = inputs.map((t, j) => (j === k ? tensor(moved, t.shape) : t));
            outs.push(objective(...xs));
          }
        }
        return outs;
      }),
    );
    const numbers = await Promise.all(values.map((v) => v.item()));
    values.forEach((v) => v.dispose());
    for (let i = 0; i < base.length; i++) {
      const numeric = (numbers[2 * i]! - numbers[2 * i + 1]!) / (2 * eps);
      const a = analytic[k]?.[i] ?? 0;
      const err = Math.abs(a - numeric);
      maxAbsError = Math.max(maxAbsError, err);
      if (err > atol + rtol * Math.abs(numeric) && ok) {
        ok = false;
        worst = { input: k, index: i, analytic: a, numeric };
      }
    }
  }
  weights.dispose();
  return { ok, maxAbsError, worst };
}
