import { type RGB, type Rng, hsl } from './rng.js';

/** A colour pattern defined on the garment's flat coordinates (x, y in [0, 1]). */
export type Texture = (x: number, y: number) => RGB;

const mix = (a: RGB, b: RGB, t: number): RGB => [
  a[0] + (b[0] - a[0]) * t,
  a[1] + (b[1] - a[1]) * t,
  a[2] + (b[2] - a[2]) * t,
];

function palette(rng: Rng): RGB[] {
  const h = rng.uniform(0, 360);
  return [
    hsl(h, rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.65)),
    hsl((h + rng.uniform(90, 210)) % 360, rng.uniform(0.4, 0.9), rng.uniform(0.45, 0.85)),
    hsl((h + rng.uniform(30, 60)) % 360, rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.9)),
  ];
}

/** Glyph-like marks: small crosses, bars and rings on a grid of cells. */
function glyph(kind: number, u: number, v: number): boolean {
  const cu = u - 0.5;
  const cv = v - 0.5;
  switch (kind) {
    case 0:
      return (Math.abs(cu) < 0.08 && Math.abs(cv) < 0.32) || (Math.abs(cv) < 0.08 && Math.abs(cu) < 0.32);
    case 1: {
      const r = Math.hypot(cu, cv);
      return r > 0.2 && r < 0.33;
    }
    case 2:
      return Math.abs(cu - cv) < 0.1 && Math.abs(cu) < 0.32;
    default:
      return Math.abs(cv) < 0.1 && Math.abs(cu) < 0.3 && Math.abs(cu) > 0.08;
  }
}

/** A random texture: stripes, checks, dots, glyphs or a gradient, sometimes layered. */
export function randomTexture(rng: Rng): Texture {
  const [a, b, c] = palette(rng);
  const kind = rng.pick(['stripes', 'checks', 'dots', 'glyphs', 'gradient', 'plain'] as const);
  // Coarse enough to survive the tiny models' 8x-downsampling VAE at 128x96, fine enough to make flows measurable.
  const period = rng.uniform(0.1, 0.28);
  const angle = rng.uniform(0, Math.PI);
  const ca = Math.cos(angle);
  const sa = Math.sin(angle);
  const glyphKind = rng.int(0, 4);
  const overlay = rng.chance(0.35);
  const base: Texture = (() => {
    switch (kind) {
      case 'stripes':
        return (x, y) => (Math.floor((x * ca + y * sa) / period) % 2 === 0 ? a : b);
      case 'checks':
        return (x, y) => ((Math.floor(x / period) + Math.floor(y / period)) % 2 === 0 ? a : b);
      case 'dots':
        return (x, y) => {
          const u = (x / period) % 1;
          const v = (y / period) % 1;
          return Math.hypot(u - 0.5, v - 0.5) < 0.28 ? b : a;
        };
      case 'glyphs':
        return (x, y) =>
          glyph(
            (glyphKind + Math.floor(x / period) + 2 * Math.floor(y / period)) % 4,
            (x / period) % 1,
            (y / period) % 1,
          )
            ? b
            : a;
      case 'gradient':
        return (x, y) => mix(a, b, Math.min(1, Math.max(0, x * ca + y * sa)));
      case 'plain':
        return () => a;
    }
  })();
  if (!overlay) return base;
  // A band of the third colour across the chest, as printed shirts have.
  const y0 = rng.uniform(0.25, 0.55);
  const h = rng.uniform(0.05, 0.12);
  return (x, y) => (y > y0 && y < y0 + h ? c : base(x, y));
}
