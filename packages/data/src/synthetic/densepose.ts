/**
 * Renders of a DensePose IUV map: the PARULA-coloured part index on black (what Leffa's VITON-HD model is
 * conditioned on), the raw I map repeated to three channels (DressCode's layout), and the IUV image
 * (I, U * 255, V * 255) used for pose transfer.
 */

// Control points of MATLAB's parula colormap (0 -> 1), linearly interpolated.
const PARULA: [number, number, number][] = [
  [53, 42, 135],
  [15, 92, 221],
  [18, 125, 216],
  [7, 156, 207],
  [21, 177, 180],
  [89, 189, 140],
  [165, 190, 107],
  [225, 185, 82],
  [252, 206, 46],
  [249, 251, 14],
];

export function parula(v: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, v)) * (PARULA.length - 1);
  const i = Math.min(PARULA.length - 2, Math.floor(x));
  const f = x - i;
  const a = PARULA[i]!;
  const b = PARULA[i + 1]!;
  return [
    Math.round(a[0] + (b[0] - a[0]) * f),
    Math.round(a[1] + (b[1] - a[1]) * f),
    Math.round(a[2] + (b[2] - a[2]) * f),
  ];
}

/** Part index 1..24 coloured by parula(I / 24), background black. */
export function renderPartsParula(iuvI: Uint8Array): Uint8Array {
  const out = new Uint8Array(iuvI.length * 3);
  iuvI.forEach((p, i) => {
    if (p > 0) out.set(parula(p / 24), 3 * i);
  });
  return out;
}

/** The raw part index repeated over three channels. */
export function renderPartsRaw(iuvI: Uint8Array): Uint8Array {
  const out = new Uint8Array(iuvI.length * 3);
  iuvI.forEach((p, i) => out.fill(p, 3 * i, 3 * i + 3));
  return out;
}

/** (I, U*255, V*255) per pixel. */
export function renderIuv(iuvI: Uint8Array, u: Float32Array, v: Float32Array): Uint8Array {
  const out = new Uint8Array(iuvI.length * 3);
  iuvI.forEach((p, i) => {
    if (p === 0) return;
    out[3 * i] = p;
    out[3 * i + 1] = Math.round(u[i]! * 255);
    out[3 * i + 2] = Math.round(v[i]! * 255);
  });
  return out;
}
