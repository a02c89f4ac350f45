/**
 * Parsers for the CLI's numeric options: each refuses what is not a finite number in its range (NaN, 'abc',
 * 1e999, 0 where at least 1 is needed) with commander's "option '--x <n>' argument 'v' is invalid" and what
 * was expected, before any work starts.
 */
import { InvalidArgumentError } from 'commander';

/** An integer option in [min, max]. */
export const intOption =
  (min = 0, max = Number.MAX_SAFE_INTEGER) =>
  (v: string): number => {
    const n = v.trim() === '' ? NaN : Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        `expected an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`}, got '${v}'.`,
      );
    }
    return n;
  };

/** A finite number option; `min` is inclusive unless `above` is given (exclusive), `max` inclusive. */
export const numberOption =
  (range: { min?: number; above?: number; max?: number } = {}) =>
  (v: string): number => {
    const n = v.trim() === '' ? NaN : Number(v);
    const { min, above, max } = range;
    const want = [
      above !== undefined ? `> ${above}` : min !== undefined ? `>= ${min}` : '',
      max !== undefined ? `<= ${max}` : '',
    ]
      .filter(Boolean)
      .join(' and ');
    if (
      !Number.isFinite(n) ||
      (min !== undefined && n < min) ||
      (above !== undefined && n <= above) ||
      (max !== undefined && n > max)
    ) {
      throw new InvalidArgumentError(`expected a finite number${want ? ` ${want}` : ''}, got '${v}'.`);
    }
    return n;
  };

/** A comma-separated list of numbers, each checked by `item`. */
export const listOption =
  (item: (v: string) => number) =>
  (v: string): number[] =>
    v.split(',').map((x) => item(x.trim()));
