export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** max|actual - expected| / max|expected|: the normalised error the parity tests bound too. */
export function normalisedError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : d;
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / Math.max(scale, 1e-12);
}

/**
 * Times `reps` rounds of several implementations interleaved (the order alternates each round), so that
 * a slow spell of a shared machine hits all of them alike. Each timing covers recording, submit and the
 * wait for the device to finish.
 */
export async function timeInterleaved(
  impls: { run: () => Promise<void> }[],
  warmup: number,
  reps: number,
): Promise<number[][]> {
  for (let w = 0; w < warmup; w++) for (const impl of impls) await impl.run();
  const times = impls.map(() => [] as number[]);
  for (let r = 0; r < reps; r++) {
    const order = r % 2 === 0 ? impls.map((_, i) => i) : impls.map((_, i) => impls.length - 1 - i);
    for (const i of order) {
      const t0 = performance.now();
      await impls[i]!.run();
      times[i]!.push(performance.now() - t0);
    }
  }
  return times;
}
