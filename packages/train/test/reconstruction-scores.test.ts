import { describe, expect, it } from 'vitest';
import { colourfulness, psnr, reconstructionScores } from '../src/leffa/metrics.js';

describe('VAE reconstruction scores', () => {
  it('colourfulness is the mean channel distance from grey; grey images score 0', () => {
    expect(colourfulness(Uint8Array.from([128, 128, 128, 10, 10, 10]))).toBe(0);
    // Pure red: grey 85, distances 170 + 85 + 85 = 340 over 3 channels.
    expect(colourfulness(Uint8Array.from([255, 0, 0]))).toBeCloseTo(340 / 3 / 255, 12);
  });

  it('reports PSNR per image (mean, std) and the colour kept by the reconstructions', () => {
    const a = Uint8Array.from([255, 0, 0, 0, 255, 0]);
    const b = Uint8Array.from([0, 0, 255, 0, 0, 255]);
    const greyed = (img: Uint8Array) => img.map(() => 85);
    const s = reconstructionScores([a, b], [greyed(a), b]);
    const p = psnr(a, greyed(a));
    expect(s.psnr.mean).toBe((p + Infinity) / 2);
    const kept = reconstructionScores([a, b], [greyed(a), Uint8Array.from(b)]);
    expect(kept.colourKept).toBeCloseTo(0.5, 12);
    const finite = reconstructionScores([a, a], [greyed(a), Uint8Array.from([250, 0, 0, 0, 250, 0])]);
    const values = [psnr(a, greyed(a)), psnr(a, Uint8Array.from([250, 0, 0, 0, 250, 0]))];
    expect(finite.psnr.mean).toBeCloseTo((values[0]! + values[1]!) / 2, 10);
    expect(finite.psnr.std).toBeCloseTo(Math.abs(values[0]! - values[1]!) / 2, 10);
  });
});
