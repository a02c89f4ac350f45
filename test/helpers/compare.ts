import { expect } from 'vitest';

/**
 * max|a - e| / max(max|e|, 1e-6) over the finite expected values: the normalised error the parity tests
 * bound. NaN must meet NaN and an infinity the same infinity, or the error is infinite.
 */
export function normalisedError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(a) !== Number.isNaN(e)) return Infinity;
    if (Number.isNaN(e)) continue;
    if (!Number.isFinite(e)) {
      if (a !== e) return Infinity;
      continue;
    }
    diff = Math.max(diff, Math.abs(a - e));
    scale = Math.max(scale, Math.abs(e));
  }
  return diff / Math.max(scale, 1e-6);
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const err = normalisedError(actual, expected);
  if (!(err <= tol)) {
    // The first NaN/infinity mismatch, else the largest difference.
    const gap = (i: number) => {
      const [a, e] = [actual[i]!, expected[i]!];
      if (Number.isFinite(e)) return Number.isNaN(a) ? Infinity : Math.abs(a - e);
      return Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)) ? 0 : Infinity;
    };
    let worst = 0;
    for (let i = 0; i < expected.length; i++) if (gap(i) > gap(worst)) worst = i;
    throw new Error(
      `${what}: normalised error ${err.toExponential(2)} > ${tol} (worst at ${worst}: got ${actual[worst]}, expected ${expected[worst]})`,
    );
  }
}
