import { describe, expect, it } from 'vitest';
import { LIP, generateSample } from '@leffa-webgpu/data';

const H = 128;
const W = 96;
const samples = Array.from({ length: 6 }, (_, i) =>
  generateSample({ seed: 100 + i, height: H, width: W, poseTransfer: true }),
);

/** Bilinear RGB lookup at continuous pixel coordinates (pixel centres at integers). */
function bilinear(img: Uint8Array, x: number, y: number): number[] {
  const x0 = Math.max(0, Math.min(W - 1, Math.floor(x)));
  const y0 = Math.max(0, Math.min(H - 1, Math.floor(y)));
  const x1 = Math.min(W - 1, x0 + 1);
  const y1 = Math.min(H - 1, y0 + 1);
  const fx = Math.min(1, Math.max(0, x - x0));
  const fy = Math.min(1, Math.max(0, y - y0));
  return [0, 1, 2].map((c) => {
    const at = (xx: number, yy: number) => img[3 * (yy * W + xx) + c]!;
    return (at(x0, y0) * (1 - fx) + at(x1, y0) * fx) * (1 - fy) + (at(x0, y1) * (1 - fx) + at(x1, y1) * fx) * fy;
  });
}

describe('synthetic people', () => {
  it('is deterministic in the seed', () => {
    const again = generateSample({ seed: 100, height: H, width: W, poseTransfer: true });
    expect(Buffer.from(again.person.image).equals(Buffer.from(samples[0]!.person.image))).toBe(true);
    expect(Buffer.from(again.garment).equals(Buffer.from(samples[0]!.garment))).toBe(true);
    expect(Buffer.from(again.poseFlow!.buffer).equals(Buffer.from(samples[0]!.poseFlow!.buffer))).toBe(true);
    expect(Buffer.from(samples[1]!.person.image).equals(Buffer.from(samples[0]!.person.image))).toBe(false);
  });

  it('keeps keypoints, parsing and sides consistent', () => {
    for (const s of samples) {
      const label = (k: number) => {
        const p = s.person.keypoints[k]!;
        return s.person.parsing[Math.floor(p.y) * W + Math.floor(p.x)];
      };
      expect([LIP.face, LIP.hair]).toContain(label(0));
      // The person's right arm is labelled Right-arm (or covered by a sleeve), the left one Left-arm.
      expect([LIP.rightArm, LIP.upperClothes]).toContain(label(3));
      expect([LIP.leftArm, LIP.upperClothes]).toContain(label(6));
      // Facing the camera: the person's right shoulder and hip are on the image left.
      expect(s.person.keypoints[2]!.x).toBeLessThan(s.person.keypoints[5]!.x);
      expect(s.person.keypoints[8]!.x).toBeLessThan(s.person.keypoints[11]!.x);
      const labels = new Set(s.person.parsing);
      expect(labels.has(LIP.upperClothes)).toBe(true);
      expect([...labels].every((l) => l >= 0 && l < 20)).toBe(true);
    }
  });

  it('gives IUV in range on the body only', () => {
    for (const s of samples) {
      const { I, U, V } = s.person.iuv;
      for (let i = 0; i < I.length; i++) {
        expect(I[i]!).toBeLessThanOrEqual(24);
        if (I[i]) {
          expect(U[i]!).toBeGreaterThanOrEqual(0);
          expect(U[i]!).toBeLessThanOrEqual(1);
          expect(V[i]!).toBeGreaterThanOrEqual(0);
          expect(V[i]!).toBeLessThanOrEqual(1);
          expect(s.person.foreground[i]).toBe(1);
        }
      }
    }
  });

  it('has an exact garment flow: warping the flat garment reproduces the worn garment', () => {
    for (const s of samples) {
      let n = 0;
      let err = 0;
      let inside = 0;
      for (let i = 0; i < W * H; i++) {
        if (!s.garmentFlowValid[i]) continue;
        n++;
        const x = s.garmentFlow[2 * i]!;
        const y = s.garmentFlow[2 * i + 1]!;
        inside += s.garmentMask[Math.round(y) * W + Math.round(x)] ? 1 : 0;
        const got = bilinear(s.garment, x, y);
        err += got.reduce((e, v, c) => e + Math.abs(v - s.person.image[3 * i + c]!), 0) / 3;
      }
      expect(n).toBeGreaterThan(200);
      expect(inside / n).toBeGreaterThan(0.97);
      // Interpolation error only (texture edges): a few grey levels on average.
      expect(err / n).toBeLessThan(12);
      // The garment region of the person is exactly where the flow is defined.
      expect(s.garmentFlowValid.reduce((a, v) => a + v, 0)).toBe(s.person.garmentMask.reduce((a, v) => a + v, 0));
    }
  });

  it('has a consistent person-to-person flow for pose transfer', () => {
    for (const s of samples) {
      let n = 0;
      let err = 0;
      for (let i = 0; i < W * H; i++) {
        if (!s.poseFlowValid![i]) continue;
        n++;
        const got = bilinear(s.person.image, s.poseFlow![2 * i]!, s.poseFlow![2 * i + 1]!);
        err += got.reduce((e, v, c) => e + Math.abs(v - s.second!.image[3 * i + c]!), 0) / 3;
      }
      expect(n).toBeGreaterThan(500);
      expect(err / n).toBeLessThan(20);
    }
  });

  it('computes an agnostic mask that covers the garment and spares face and hands', () => {
    for (const s of samples) {
      const m = s.person.agnosticMask;
      let garment = 0;
      let covered = 0;
      for (let i = 0; i < W * H; i++) {
        if (s.person.parsing[i] === LIP.upperClothes) {
          garment++;
          covered += m[i]!;
        }
        if (s.person.parsing[i] === LIP.face || s.person.parsing[i] === LIP.hair) expect(m[i]).toBe(0);
      }
      expect(covered / garment).toBeGreaterThan(0.95);
      for (const w of [4, 7]) {
        const p = s.person.keypoints[w]!;
        if (p.visible) expect(m[Math.floor(p.y) * W + Math.floor(p.x)]).toBe(0);
      }
    }
  });
});
