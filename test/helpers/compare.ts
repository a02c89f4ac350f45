import { expect } from 'vitest';

/** max|a - e| / max(max|e|, 1e-6): the normalised error the parity tests bound. */
export function normalisedError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(a) !== Number.isNaN(e)) return Infinity;
    if (!Number.isNaN(e)) diff = Math.max(diff, Math.abs(a - e));
    scale = Math.max(scale, Math.abs(e));
  }
  return diff / Math.max(scale, 1e-6);
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const err = normalisedError(actual, expected);
  if (!(err <= tol)) {
    let worst = 0;
    for (let i = 0; i < expected.length; i++) {
      if (Math.abs(actual[i]! - expected[i]!) > Math.abs(actual[worst]! - expected[worst]!)) worst = i;
    }
    throw new Error(`${what}: normalised error ${err.toExponential(2)} > ${tol} (worst at ${worst}: got ${actual[worst]}, expected ${expected[worst]})`);
  }
}
