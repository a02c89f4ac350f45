import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../src/index.js';

// zlib.crc32 exists from Node 20.15 / 22.2; where it does, ours must agree with it byte for byte.
const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
const utf8 = (s: string) => new TextEncoder().encode(s);

/** Deterministic pseudo-random bytes (xorshift32), so a failure reproduces. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

describe('crc32', () => {
  it('matches the standard check values', () => {
    expect(crc32(utf8('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(utf8('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
    expect(crc32(new Uint8Array([0]))).toBe(0xd202ef8d);
    expect(crc32(new Uint8Array(32).fill(0xff))).toBe(0xff6cab0b);
    // PNG's IEND chunk: the CRC of the type bytes 'IEND' is the constant every PNG ends with.
    expect(crc32(utf8('IEND'))).toBe(0xae426082);
  });

  it('returns unsigned 32-bit values', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const v = crc32(bytes(17 * seed, seed));
      expect(Number.isInteger(v) && v >= 0 && v <= 0xffffffff).toBe(true);
    }
  });

  it('continues a running checksum: crc32(b, crc32(a)) = crc32(a ++ b)', () => {
    const all = bytes(1000, 7);
    for (const cut of [0, 1, 333, 999, 1000]) {
      expect(crc32(all.subarray(cut), crc32(all.subarray(0, cut)))).toBe(crc32(all));
    }
  });

  it.skipIf(!zlibCrc32)('agrees with zlib.crc32 on random bytes, lengths and running values', () => {
    for (let seed = 1; seed <= 64; seed++) {
      const data = bytes((seed * 7919) % 5000, seed);
      expect(crc32(data)).toBe(zlibCrc32!(data));
      const start = (seed * 2654435761) >>> 0;
      expect(crc32(data, start)).toBe(zlibCrc32!(data, start));
    }
  });
});
