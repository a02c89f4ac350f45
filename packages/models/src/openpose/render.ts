import type { Person } from './assemble.js';
import { LIMB_SEQ } from './assemble.js';

/** The 18 standard OpenPose colours, one per part and per limb. */
export const OPENPOSE_COLORS: [number, number, number][] = [
  [255, 0, 0],
  [255, 85, 0],
  [255, 170, 0],
  [255, 255, 0],
  [170, 255, 0],
  [85, 255, 0],
  [0, 255, 0],
  [0, 255, 85],
  [0, 255, 170],
  [0, 255, 255],
  [0, 170, 255],
  [0, 85, 255],
  [0, 0, 255],
  [85, 0, 255],
  [170, 0, 255],
  [255, 0, 255],
  [255, 0, 170],
  [255, 0, 85],
];

/**
 * The skeleton condition image as the ControlNet annotator draws it: black canvas, the 17 limbs as filled
 * ellipses (half-width `stickWidth`, colour x 0.6), then the joints as filled discs of radius 4.
 */
export function renderSkeleton(people: Person[], width: number, height: number, stickWidth = 4): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  const set = (x: number, y: number, c: readonly number[]) => {
    if (x >= 0 && y >= 0 && x < width && y < height) out.set(c, 3 * (y * width + x));
  };
  for (const p of people) {
    for (let i = 0; i < 17; i++) {
      const [a, b] = LIMB_SEQ[i]!.map((k) => p.keypoints[k - 1]!) as [
        [number, number, number],
        [number, number, number],
      ];
      if (a[2] <= 0 || b[2] <= 0) continue;
      const color = OPENPOSE_COLORS[i]!.map((c) => Math.floor(c * 0.6));
      const cx = (a[0] + b[0]) / 2;
      const cy = (a[1] + b[1]) / 2;
      const half = Math.hypot(b[0] - a[0], b[1] - a[1]) / 2;
      const ang = Math.atan2(b[1] - a[1], b[0] - a[0]);
      const cos = Math.cos(ang);
      const sin = Math.sin(ang);
      const r = Math.ceil(half + stickWidth);
      for (let y = Math.floor(cy - r); y <= Math.ceil(cy + r); y++) {
        for (let x = Math.floor(cx - r); x <= Math.ceil(cx + r); x++) {
          const u = (x - cx) * cos + (y - cy) * sin;
          const v = -(x - cx) * sin + (y - cy) * cos;
          if ((u / Math.max(half, 0.5)) ** 2 + (v / stickWidth) ** 2 <= 1) set(x, y, color);
        }
      }
    }
  }
  for (const p of people) {
    p.keypoints.forEach(([kx, ky, s], i) => {
      if (s <= 0) return;
      for (let dy = -4; dy <= 4; dy++)
        for (let dx = -4; dx <= 4; dx++)
          if (dx * dx + dy * dy <= 16) set(Math.round(kx) + dx, Math.round(ky) + dy, OPENPOSE_COLORS[i]!);
    });
  }
  return out;
}
