import { LIP_LABELS as LIP_LABEL_SET } from '@leffa-webgpu/models';
import { DENSEPOSE_INDEX, type Part, type PartId } from './body.js';
import { type LowerGarment, type UpperGarment, lowerGarmentAt, upperGarmentAt } from './garment.js';
import type { RGB } from './rng.js';
import { Band } from './shapes.js';
import type { Point } from './skeleton.js';

/** LIP's 20 parsing labels (SCHP's LIP label set). */
export const LIP_LABELS: readonly string[] = LIP_LABEL_SET.labels;

export const LIP = {
  background: 0,
  hair: 2,
  upperClothes: 5,
  pants: 9,
  skirt: 12,
  face: 13,
  leftArm: 14,
  rightArm: 15,
  leftLeg: 16,
  rightLeg: 17,
  leftShoe: 18,
  rightShoe: 19,
} as const;

export interface Appearance {
  skin: RGB;
  hair: RGB;
  shoes: RGB;
  /** Hair covers the head above this local height (0 top, 1 chin), varying with the horizontal position. */
  hairline: number;
  longHair: boolean;
  upper: UpperGarment;
  lower: LowerGarment;
  background: (x: number, y: number) => RGB;
}

/** Per-pixel outputs of rendering one person. */
export interface Rendered {
  image: Uint8Array;
  parsing: Uint8Array;
  /** DensePose part index (0 background). */
  iuvI: Uint8Array;
  /** U, V in [0, 1]. */
  iuvU: Float32Array;
  iuvV: Float32Array;
  /** Which part covers each pixel (index into `parts`, -1 background) and its local coordinates. */
  partIndex: Int16Array;
  localT: Float32Array;
  localS: Float32Array;
  /** Flat-garment coordinates (x, y in [0, 1]) where the upper garment covers, NaN elsewhere. */
  garmentX: Float32Array;
  garmentY: Float32Array;
}

const LEFT_PARTS = new Set<PartId>([
  'lUpperArm',
  'lLowerArm',
  'lHand',
  'lElbow',
  'lUpperLeg',
  'lLowerLeg',
  'lKnee',
  'lFoot',
]);

function skinLabel(part: PartId): number {
  if (part === 'head' || part === 'neck' || part === 'torso') return LIP.face;
  const left = LEFT_PARTS.has(part);
  if (part.includes('Arm') || part.includes('Hand') || part.includes('Elbow')) return left ? LIP.leftArm : LIP.rightArm;
  if (part.includes('Foot')) return left ? LIP.leftShoe : LIP.rightShoe;
  return left ? LIP.leftLeg : LIP.rightLeg;
}

const shade = (c: RGB, f: number): RGB => [c[0] * f, c[1] * f, c[2] * f];

/**
 * Rasterises a person: for each pixel the topmost part decides the colour, the LIP label, the DensePose
 * IUV value and, under the upper garment, the exact flat-garment coordinate.
 */
export function renderPerson(
  parts: Part[],
  look: Appearance,
  width: number,
  height: number,
  hairBack?: Band,
  skirt?: Band,
): Rendered {
  const n = width * height;
  const out: Rendered = {
    image: new Uint8Array(n * 3),
    parsing: new Uint8Array(n),
    iuvI: new Uint8Array(n),
    iuvU: new Float32Array(n),
    iuvV: new Float32Array(n),
    partIndex: new Int16Array(n).fill(-1),
    localT: new Float32Array(n),
    localS: new Float32Array(n),
    garmentX: new Float32Array(n).fill(NaN),
    garmentY: new Float32Array(n).fill(NaN),
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const p: Point = { x: x + 0.5, y: y + 0.5 };
      let color = look.background(p.x / width, p.y / height);
      let label: number = LIP.background;
      // Long hair hangs behind everything else.
      if (hairBack && hairBack.local(p)) {
        color = shade(look.hair, 0.85);
        label = LIP.hair;
      }
      let hit = -1;
      let local: { t: number; s: number } | null = null;
      for (let k = parts.length - 1; k >= 0; k--) {
        const b = parts[k]!.shape.bounds;
        if (p.x < b[0] || p.y < b[1] || p.x > b[2] || p.y > b[3]) continue;
        local = parts[k]!.shape.local(p);
        if (local) {
          hit = k;
          break;
        }
      }
      // A skirt sits over the legs but under the torso and arms.
      const skirtLocal = skirt?.local(p);
      if (skirtLocal && (hit < 0 || parts[hit]!.id.includes('Leg') || parts[hit]!.id.includes('Knee'))) {
        out.image.set(shade(look.lower.color, 1 - 0.12 * skirtLocal.s * skirtLocal.s), 3 * i);
        out.parsing[i] = LIP.skirt;
        out.iuvI[i] = 0;
        continue;
      }
      if (hit >= 0 && local) {
        const part = parts[hit]!;
        out.partIndex[i] = hit;
        out.localT[i] = local.t;
        out.localS[i] = local.s;
        out.iuvI[i] = DENSEPOSE_INDEX[part.id];
        out.iuvU[i] = local.t;
        out.iuvV[i] = (local.s + 1) / 2;
        const flat = upperGarmentAt(look.upper, part.id, local.t, local.s);
        const lower = flat ? null : lowerGarmentAt(look.lower, look.upper.hem, part.id, local.t, local.s);
        if (flat) {
          color = look.upper.texture(flat.x, flat.y);
          label = LIP.upperClothes;
          out.garmentX[i] = flat.x;
          out.garmentY[i] = flat.y;
        } else if (lower && !(look.lower.kind === 'skirt' && part.id !== 'torso')) {
          color = shade(lower, 1 - 0.15 * local.s * local.s);
          label = look.lower.kind === 'skirt' ? LIP.skirt : LIP.pants;
        } else if (part.id === 'head' && local.t < look.hairline + 0.08 * local.s * local.s) {
          color = look.hair;
          label = LIP.hair;
        } else if (part.id.endsWith('Foot')) {
          color = look.shoes;
          label = skinLabel(part.id);
        } else {
          color = shade(look.skin, 1 - 0.18 * local.s * local.s);
          label = skinLabel(part.id);
          if (part.id === 'head') color = faceDetail(color, local);
        }
      }
      out.image[3 * i] = color[0];
      out.image[3 * i + 1] = color[1];
      out.image[3 * i + 2] = color[2];
      out.parsing[i] = label;
    }
  }
  return out;
}

/** Eyes and a mouth, so that faces have an orientation the networks can see. */
function faceDetail(skin: RGB, l: { t: number; s: number }): RGB {
  const eye = (cx: number) => Math.hypot((l.s - cx) * 1.2, (l.t - 0.45) * 2.2) < 0.11;
  if (eye(-0.38) || eye(0.38)) return [40, 30, 30];
  if (Math.abs(l.s) < 0.28 && Math.abs(l.t - 0.75) < 0.03) return [150, 60, 60];
  return skin;
}
