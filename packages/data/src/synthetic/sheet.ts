import type { RgbImage } from '../io/png.js';
import type { SyntheticSample } from './sample.js';

/** The standard LIP palette (as SCHP's visualisation), one RGB triple per label. */
export const LIP_PALETTE: [number, number, number][] = [
  [0, 0, 0],
  [128, 0, 0],
  [255, 0, 0],
  [0, 85, 0],
  [170, 0, 51],
  [255, 85, 0],
  [0, 0, 85],
  [0, 119, 221],
  [85, 85, 0],
  [0, 85, 85],
  [85, 51, 0],
  [52, 86, 128],
  [0, 128, 0],
  [0, 0, 255],
  [51, 170, 221],
  [0, 255, 255],
  [85, 255, 170],
  [170, 255, 85],
  [255, 255, 0],
  [255, 170, 0],
];

export function paletteImage(labels: Uint8Array): Uint8Array {
  const out = new Uint8Array(labels.length * 3);
  labels.forEach((l, i) => out.set(LIP_PALETTE[l] ?? [255, 255, 255], 3 * i));
  return out;
}

/** A flow as colours (x -> red, y -> green over the reference image; invalid black). */
export function flowImage(flow: Float32Array, valid: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(valid.length * 3);
  valid.forEach((v, i) => {
    if (!v) return;
    out[3 * i] = Math.round((255 * flow[2 * i]!) / width);
    out[3 * i + 1] = Math.round((255 * flow[2 * i + 1]!) / height);
    out[3 * i + 2] = 128;
  });
  return out;
}

/** Draws the 18 keypoints as small squares onto a copy of an image. */
export function drawKeypoints(
  image: Uint8Array,
  keypoints: { x: number; y: number; visible: boolean }[],
  width: number,
  height: number,
): Uint8Array {
  const out = image.slice();
  keypoints.forEach((k, j) => {
    if (!k.visible) return;
    const color = [(j * 97) % 256, (j * 57 + 100) % 256, (j * 151 + 50) % 256];
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const x = Math.round(k.x) + dx;
        const y = Math.round(k.y) + dy;
        if (x >= 0 && y >= 0 && x < width && y < height) out.set(color, 3 * (y * width + x));
      }
    }
  });
  return out;
}

/** Tiles images (all width x height RGB) into rows. */
export function tile(rows: Uint8Array[][], width: number, height: number, gap = 2): RgbImage {
  const cols = Math.max(...rows.map((r) => r.length));
  const W = cols * (width + gap) - gap;
  const H = rows.length * (height + gap) - gap;
  const data = new Uint8Array(W * H * 3).fill(255);
  rows.forEach((row, r) =>
    row.forEach((img, c) => {
      for (let y = 0; y < height; y++) {
        const dst = ((r * (height + gap) + y) * W + c * (width + gap)) * 3;
        data.set(img.subarray(y * width * 3, (y + 1) * width * 3), dst);
      }
    }),
  );
  return { width: W, height: H, data };
}

/** A contact sheet row per sample: person, garment, parsing, keypoints, DensePose, agnostic, garment flow. */
export function renderSheet(samples: SyntheticSample[]): RgbImage {
  const { width, height } = samples[0]!;
  return tile(
    samples.map((s) => [
      s.person.image,
      s.garment,
      paletteImage(s.person.parsing),
      drawKeypoints(s.person.image, s.person.keypoints, width, height),
      s.person.densepose,
      s.person.agnostic,
      flowImage(s.garmentFlow, s.garmentFlowValid, width, height),
      ...(s.second ? [s.second.image, flowImage(s.poseFlow!, s.poseFlowValid!, width, height)] : []),
    ]),
    width,
    height,
  );
}
