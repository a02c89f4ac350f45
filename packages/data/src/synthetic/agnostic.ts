import { dilate, drawLine, fillHoles, largestComponent } from './morphology.js';
import { LIP } from './render.js';
import type { Point } from './skeleton.js';

export type GarmentCategory = 'upper_body' | 'lower_body' | 'dresses';

/**
 * The agnostic (inpainting) mask of the try-on recipe used by Leffa and IDM-VTON for VITON-HD, computed from
 * a LIP parsing map and the 18 OpenPose keypoints: the garment labels dilated, arms drawn as thick
 * shoulder-elbow-wrist polylines (width proportional to the image width), holes filled, the largest region
 * kept, then the head, hands and feet (and, for upper-body garments, the lower body) protected.
 * Returns an H*W mask, 1 = to be regenerated.
 */
export function agnosticMask(
  parsing: Uint8Array,
  keypoints: readonly (Point & { visible?: boolean })[],
  width: number,
  height: number,
  category: GarmentCategory = 'upper_body',
): Uint8Array {
  const has = (labels: number[]) => Uint8Array.from(parsing, (l) => (labels.includes(l) ? 1 : 0));
  const garment =
    category === 'upper_body'
      ? has([LIP.upperClothes, 6, 7])
      : category === 'lower_body'
        ? has([LIP.pants, LIP.skirt])
        : has([LIP.upperClothes, 6, 7, LIP.pants, LIP.skirt]);
  const r = Math.max(1, Math.round(width / 64));
  let mask = dilate(garment, width, height, r);
  if (category !== 'lower_body') {
    // Arms: thick polylines through shoulder, elbow and wrist, so sleeves of any length can be generated.
    const armWidth = Math.max(2, width / 16);
    for (const [a, b, c] of [
      [2, 3, 4],
      [5, 6, 7],
    ] as const) {
      const [pa, pb, pc] = [keypoints[a], keypoints[b], keypoints[c]];
      if (pa && pb && pa.visible !== false && pb.visible !== false) drawLine(mask, width, height, pa, pb, armWidth / 2);
      if (pb && pc && pb.visible !== false && pc.visible !== false) drawLine(mask, width, height, pb, pc, armWidth / 2);
    }
    mask = Uint8Array.from(mask, (v, i) => (v || parsing[i] === LIP.leftArm || parsing[i] === LIP.rightArm ? 1 : 0));
  } else {
    mask = Uint8Array.from(mask, (v, i) => (v || parsing[i] === LIP.leftLeg || parsing[i] === LIP.rightLeg ? 1 : 0));
  }
  mask = largestComponent(fillHoles(mask, width, height), width, height);

  // Protected regions: head and hair, hands (a disc around each wrist), shoes, and the other half of the body.
  const protect = has([1, LIP.hair, 4, LIP.face, LIP.leftShoe, LIP.rightShoe]);
  const handR = Math.max(2, width / 28);
  if (category !== 'lower_body') {
    for (const w of [4, 7]) {
      const p = keypoints[w];
      if (p && p.visible !== false) drawLine(protect, width, height, p, p, handR);
    }
  }
  const lower = category === 'upper_body' ? has([LIP.pants, LIP.skirt, LIP.leftLeg, LIP.rightLeg]) : null;
  const upper = category === 'lower_body' ? has([LIP.upperClothes, 6, 7, LIP.leftArm, LIP.rightArm]) : null;
  // The neck skin just below the chin stays (it is labelled face) except where the garment's dilation reached.
  return Uint8Array.from(mask, (v, i) =>
    v && !protect[i] && !(lower?.[i] && !garment[i]) && !(upper?.[i] && !garment[i]) ? 1 : 0,
  );
}
