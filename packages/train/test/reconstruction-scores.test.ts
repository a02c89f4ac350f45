import { describe, expect, it } from 'vitest';
import { colourfulness, l1, psnr, reconstructionScores, ssim } from '../src/leffa/metrics.js';

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

describe('image metrics inside a region', () => {
  it('l1 and PSNR count only the pixels of the region, all three channels each; an empty region is NaN', () => {
    const a = Uint8Array.from([10, 20, 30, 100, 100, 100]);
    const b = new Uint8Array(6);
    expect(l1(a, b, Uint8Array.from([1, 0]))).toBeCloseTo(20 / 255, 12);
    expect(l1(a, b, Uint8Array.from([0, 1]))).toBeCloseTo(100 / 255, 12);
    expect(l1(a, b)).toBeCloseTo(60 / 255, 12);
    expect(psnr(a, b, Uint8Array.from([0, 1]))).toBeCloseTo(10 * Math.log10(255 ** 2 / 100 ** 2), 12);
    expect(l1(a, b, Uint8Array.from([0, 0]))).toBeNaN();
    expect(psnr(a, b, Uint8Array.from([0, 0]))).toBeNaN();
    expect(() => l1(a, b, Uint8Array.from([1]))).toThrow(/a region of 1 pixels for an RGB image of 2/);
  });

  it('SSIM averages the windows centred in the region: a change outside their reach leaves it at 1', () => {
    const [w, h] = [24, 16];
    const a = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 251);
    const b = Uint8Array.from(a);
    // Columns 18 and up differ; windows (radius 5) centred on columns 0..7 never reach them.
    for (let y = 0; y < h; y++) for (let x = 18; x < w; x++) for (let c = 0; c < 3; c++) b[3 * (y * w + x) + c] = 0;
    const left = Uint8Array.from({ length: w * h }, (_, i) => (i % w < 8 ? 1 : 0));
    const right = Uint8Array.from(left, (v) => 1 - v);
    expect(ssim(a, b, w, h, left)).toBe(1);
    expect(ssim(a, b, w, h, right)).toBeLessThan(ssim(a, b, w, h));
    expect(ssim(a, b, w, h)).toBeLessThan(1);
    expect(psnr(a, b, left)).toBe(Infinity);
    expect(ssim(a, b, w, h, new Uint8Array(w * h))).toBeNaN();
    expect(() => ssim(a, b, w, h, new Uint8Array(w))).toThrow(/ssim: a region of 24 pixels for a 24x16 image/);
  });
});
