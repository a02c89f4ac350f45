import type { PartId } from './body.js';
import { type RGB, type Rng, hsl } from './rng.js';
import { type Texture, randomTexture } from './texture.js';

export type UpperKind = 'tshirt' | 'longsleeve' | 'tank';
export type LowerKind = 'trousers' | 'shorts' | 'skirt';

/**
 * The upper garment: its cut and a texture in FLAT coordinates. The same map from body-part surface
 * coordinates to flat coordinates renders the garment on the person and gives the exact flow to the flat
 * (laid-out) garment image.
 *
 * Flat layout (x, y in [0, 1] of the garment image): the body is the rectangle x in [0.5 - BODY_HALF,
 * 0.5 + BODY_HALF], y in [TOP, BOTTOM]; each sleeve leaves a top corner of the body outwards and downwards
 * at SLEEVE_ANGLE. The wearer's right side is on the image left, as in try-on datasets' cloth photos.
 */
export interface UpperGarment {
  kind: UpperKind;
  texture: Texture;
  /** Sleeve end along the arm: 0..1 on the upper arm, 1..2 continues down the lower arm. */
  sleeveEnd: number;
  /** Torso fraction the garment reaches down to (the rest shows trousers or skin). */
  hem: number;
  neckDepth: number;
  neckHalf: number;
}

export interface LowerGarment {
  kind: LowerKind;
  color: RGB;
  stripe: RGB;
  /** How far down the legs the garment reaches: upper leg 0..1, lower leg 1..2. */
  legEnd: number;
}

export const FLAT = {
  BODY_HALF: 0.24,
  TOP: 0.1,
  BOTTOM: 0.94,
  SLEEVE_ANGLE: 0.75,
  SLEEVE_LENGTH: 0.26,
  SLEEVE_HALF: 0.085,
};

export function sampleUpperGarment(rng: Rng): UpperGarment {
  const kind = rng.pick(['tshirt', 'tshirt', 'longsleeve', 'tank'] as const);
  return {
    kind,
    texture: randomTexture(rng),
    sleeveEnd: kind === 'tshirt' ? rng.uniform(0.35, 0.7) : kind === 'longsleeve' ? rng.uniform(1.85, 2) : 0,
    hem: rng.uniform(0.86, 1),
    neckDepth: rng.uniform(0.05, 0.14),
    neckHalf: rng.uniform(0.22, 0.4),
  };
}

export function sampleLowerGarment(rng: Rng): LowerGarment {
  const kind = rng.pick(['trousers', 'trousers', 'shorts', 'skirt'] as const);
  const h = rng.uniform(0, 360);
  return {
    kind,
    color: hsl(h, rng.uniform(0.1, 0.6), rng.uniform(0.15, 0.5)),
    stripe: hsl(h, rng.uniform(0.1, 0.6), rng.uniform(0.5, 0.7)),
    legEnd: kind === 'trousers' ? 2 : kind === 'shorts' ? rng.uniform(0.45, 0.8) : rng.uniform(0.6, 1),
  };
}

const TANK_ARMHOLE = 0.72;

/** Flat coordinates of the upper garment at a body surface point, or null where the body shows. */
export function upperGarmentAt(g: UpperGarment, part: PartId, t: number, s: number): { x: number; y: number } | null {
  if (part === 'torso') {
    if (t > g.hem) return null;
    // The neckline is a curve cut from the top middle; tank tops also leave the shoulders bare.
    if (t < g.neckDepth * (1 - (s / g.neckHalf) ** 2)) return null;
    if (g.kind === 'tank' && Math.abs(s) > TANK_ARMHOLE && t < 0.3) return null;
    return { x: 0.5 + FLAT.BODY_HALF * s, y: FLAT.TOP + (FLAT.BOTTOM - FLAT.TOP) * (t / g.hem) };
  }
  const right = part === 'rUpperArm' || part === 'rElbow' || part === 'rLowerArm';
  const left = part === 'lUpperArm' || part === 'lElbow' || part === 'lLowerArm';
  if (!right && !left) return null;
  const along = part.endsWith('UpperArm') ? t : part.endsWith('Elbow') ? 1 : 1 + t;
  if (along > g.sleeveEnd) return null;
  // Joint discs use their own radius as the across coordinate; they map onto the sleeve at the elbow.
  return sleevePoint(right, along, part.endsWith('Elbow') ? Math.max(-1, Math.min(1, s)) : s);
}

/** The flat point of a sleeve at `along` (0..2 arm lengths from the shoulder) and across `s`. */
function sleevePoint(right: boolean, along: number, s: number): { x: number; y: number } {
  const side = right ? -1 : 1;
  const dir = { x: side * Math.sin(FLAT.SLEEVE_ANGLE), y: Math.cos(FLAT.SLEEVE_ANGLE) };
  const perp = { x: dir.y, y: -dir.x };
  const start = { x: 0.5 + side * (FLAT.BODY_HALF - FLAT.SLEEVE_HALF * 0.7), y: FLAT.TOP + FLAT.SLEEVE_HALF * 0.9 };
  const len = along * FLAT.SLEEVE_LENGTH;
  return {
    x: start.x + dir.x * len + perp.x * s * FLAT.SLEEVE_HALF,
    y: start.y + dir.y * len + perp.y * s * FLAT.SLEEVE_HALF,
  };
}

/** Whether a flat point belongs to the garment (for rendering the flat garment image and its mask). */
export function insideFlatGarment(g: UpperGarment, x: number, y: number): boolean {
  const s = (x - 0.5) / FLAT.BODY_HALF;
  const t = ((y - FLAT.TOP) / (FLAT.BOTTOM - FLAT.TOP)) * g.hem;
  if (Math.abs(s) <= 1 && t >= 0 && t <= g.hem && upperGarmentAt(g, 'torso', t, s)) return true;
  for (const right of [true, false]) {
    const side = right ? -1 : 1;
    const dir = { x: side * Math.sin(FLAT.SLEEVE_ANGLE), y: Math.cos(FLAT.SLEEVE_ANGLE) };
    const perp = { x: dir.y, y: -dir.x };
    const start = sleevePoint(right, 0, 0);
    const dx = x - start.x;
    const dy = y - start.y;
    const along = (dx * dir.x + dy * dir.y) / FLAT.SLEEVE_LENGTH;
    const across = (dx * perp.x + dy * perp.y) / FLAT.SLEEVE_HALF;
    if (along >= 0 && along <= g.sleeveEnd && Math.abs(across) <= 1) return true;
  }
  return false;
}

/** Lower garment colour at a body point, or null where it does not cover. */
export function lowerGarmentAt(g: LowerGarment, upperHem: number, part: PartId, t: number, s: number): RGB | null {
  const stripe = (v: number) => (Math.abs(v) > 0.82 ? g.stripe : g.color);
  if (part === 'torso') return t > upperHem ? g.color : null;
  const leg = part.endsWith('UpperLeg') ? t : part.endsWith('Knee') ? 1 : part.endsWith('LowerLeg') ? 1 + t : -1;
  if (leg < 0 || leg > g.legEnd) return null;
  return stripe(s);
}
