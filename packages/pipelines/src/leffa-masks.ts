/**
 * Leffa's agnostic masks (leffa_utils/utils.py: get_agnostic_mask_hd for VITON-HD, get_agnostic_mask_dc for
 * DressCode), re-implemented pixel for pixel: the region to inpaint, from a parse map with Leffa's labels and
 * the OpenPose body keypoints. Arms are drawn with Pillow's line / ellipse rules and the masks combined with
 * OpenCV's morphology, flood fill and contours (see ./raster).
 */
import { newCanvas, drawArc, drawLine, type Canvas } from './raster/pil-draw.js';
import { dilateRect, erodeRect, holeFill } from './raster/cv-morph.js';
import { largestContourFill } from './raster/cv-contours.js';

/** Leffa's label map (ATR with neck), as its parser outputs. */
export const LEFFA_LABELS = {
  background: 0,
  hat: 1,
  hair: 2,
  sunglasses: 3,
  upper_clothes: 4,
  skirt: 5,
  pants: 6,
  dress: 7,
  belt: 8,
  left_shoe: 9,
  right_shoe: 10,
  head: 11,
  left_leg: 12,
  right_leg: 13,
  left_arm: 14,
  right_arm: 15,
  bag: 16,
  scarf: 17,
  neck: 18,
} as const;

export type LeffaGarmentCategory = 'upper_body' | 'lower_body' | 'dresses';
export type LeffaMaskType = 'hd' | 'dc';
/**
 * The 18 OpenPose (COCO) body points in pixels of Leffa's 384x512 OpenPose input (x right, y down), as
 * `pose_keypoints_2d`. A point OpenPose did not find is `null` or [0, 0] (Leffa writes [0, 0]; both mean the same).
 * Leffa scales them by height / 512, so for a parse map of another height give them in a 512-high frame.
 */
export type LeffaKeypoints = readonly (readonly [number, number] | null)[];

const R_SHOULDER = 2;
const R_ELBOW = 3;
const R_WRIST = 4;
const L_SHOULDER = 5;
const L_ELBOW = 6;
const L_WRIST = 7;

/** Smallest parse-map height: below it the arm lines would be one pixel wide (Pillow's thin-line rules). */
const MIN_HEIGHT = 18;

type Mask = Uint8Array;

function labelsIn(parsing: Uint8Array, labels: readonly number[]): Mask {
  const set = new Uint8Array(256);
  for (const l of labels) set[l] = 1;
  return parsing.map((v) => set[v]!);
}

function or(...masks: Mask[]): Mask {
  const out = new Uint8Array(masks[0]!.length);
  for (const m of masks) for (let i = 0; i < m.length; i++) if (m[i]) out[i] = 1;
  return out;
}
const andNot = (a: Mask, b: Mask): Mask => a.map((v, i) => (v && !b[i] ? 1 : 0));
const canvasMask = (c: Canvas): Mask => c.data.map((v) => (v ? 1 : 0));

function checkInputs(
  parsing: Uint8Array,
  height: number,
  width: number,
  keypoints: LeffaKeypoints,
  category: string,
  modelType: string,
) {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new Error(`leffaAgnosticMask: bad size ${width}x${height}`);
  }
  if (parsing.length !== height * width) {
    throw new Error(
      `leffaAgnosticMask: parsing has ${parsing.length} labels, ${width}x${height} needs ${height * width}`,
    );
  }
  if (height < MIN_HEIGHT)
    throw new Error(`leffaAgnosticMask: height ${height} is below ${MIN_HEIGHT} (Leffa's arm lines would vanish)`);
  for (let i = 0; i < parsing.length; i++) {
    if (parsing[i]! > 18)
      throw new Error(`leffaAgnosticMask: label ${parsing[i]} at pixel ${i} is not one of Leffa's 0..18`);
  }
  if (keypoints.length < 18)
    throw new Error(`leffaAgnosticMask: ${keypoints.length} keypoints, OpenPose's body model gives 18`);
  for (const [i, p] of keypoints.entries()) {
    if (p !== null && !(p.length === 2 && Number.isFinite(p[0]) && Number.isFinite(p[1]))) {
      throw new Error(`leffaAgnosticMask: keypoint ${i} is ${JSON.stringify(p)}, not [x, y] or null`);
    }
  }
  if (category !== 'upper_body' && category !== 'lower_body' && category !== 'dresses') {
    throw new Error(`leffaAgnosticMask: category '${category}' is not upper_body, lower_body or dresses`);
  }
  if (modelType !== 'hd' && modelType !== 'dc')
    throw new Error(`leffaAgnosticMask: model type '${modelType}' is not 'hd' or 'dc'`);
}

/**
 * The agnostic (inpainting) mask Leffa computes for a try-on: HxW bytes, 255 where the garment goes.
 * `parsing` holds Leffa's labels (LEFFA_LABELS) row-major; `modelType` picks get_agnostic_mask_hd ('hd',
 * VITON-HD) or get_agnostic_mask_dc ('dc', DressCode), as Leffa's app does.
 */
export function leffaAgnosticMask(
  parsing: Uint8Array,
  height: number,
  width: number,
  keypoints: LeffaKeypoints,
  category: LeffaGarmentCategory,
  modelType: LeffaMaskType,
): Uint8Array {
  checkInputs(parsing, height, width, keypoints, category, modelType);
  // Leffa scales every point by height / 512 (float64, as numpy does).
  const scale = height / 512;
  const pt = (i: number): [number, number] => {
    const p = keypoints[i] ?? [0, 0];
    return [p[0] * scale, p[1] * scale];
  };
  const g = { parsing, height, width, pt, category };
  return modelType === 'hd' ? maskHd(g) : maskDc(g);
}

interface Inputs {
  parsing: Uint8Array;
  height: number;
  width: number;
  pt: (i: number) => [number, number];
  category: LeffaGarmentCategory;
}

/** Leffa's test for a point OpenPose did not find (it writes [0, 0]). */
const missing = (p: readonly [number, number]) => p[0] <= 1 && p[1] <= 1;

/** numpy's float64 -> uint16 cast on x86-64 (truncate, then wrap to 16 bits), which Leffa applies to arm points. */
const toUint16 = (v: number) => ((Math.trunc(v) % 65536) + 65536) % 65536;

function maskHd({ parsing, height, width, pt, category }: Inputs): Uint8Array {
  const L = LEFFA_LABELS;
  const armWidth = Math.trunc((60 / 512) * height);
  const head = labelsIn(parsing, [L.hat, L.sunglasses, L.head]);
  let fixed = labelsIn(parsing, [L.left_shoe, L.right_shoe, L.hat, L.sunglasses, L.bag]);
  let parseMask: Mask;
  if (category === 'dresses') {
    parseMask = labelsIn(parsing, [L.dress, L.upper_clothes, L.skirt, L.pants]);
  } else if (category === 'upper_body') {
    parseMask = labelsIn(parsing, [L.upper_clothes, L.dress]);
    fixed = or(fixed, labelsIn(parsing, [L.skirt, L.pants]));
  } else {
    parseMask = labelsIn(parsing, [L.pants, L.left_leg, L.right_leg, L.skirt]);
    fixed = or(fixed, labelsIn(parsing, [L.upper_clothes, L.left_arm, L.right_arm]));
  }
  // Everything but the fixed labels may change (background included).
  const changeable = fixed.map((v) => (v ? 0 : 1));

  const withArms = category !== 'lower_body';
  let armsDrawn: Mask | null = null;
  if (withArms) {
    const armsLeft = labelsIn(parsing, [L.left_arm]);
    const armsRight = labelsIn(parsing, [L.right_arm]);
    const side = (
      shoulder: [number, number],
      elbow: [number, number],
      wrist: [number, number],
      parsed: Mask,
      wristFirst: boolean,
    ): Mask => {
      if (missing(wrist)) return parsed;
      const c = newCanvas(width, height);
      const ext: [number, number] = [elbow[0] + 1.2 * (wrist[0] - elbow[0]), elbow[1] + 1.2 * (wrist[1] - elbow[1])];
      const chain = (wristFirst ? [ext, elbow, shoulder] : [shoulder, elbow, ext]).map(
        (p) => [toUint16(p[0]), toUint16(p[1])] as const,
      );
      drawLine(c, chain, 255, armWidth, true);
      const r = Math.floor(armWidth / 2);
      drawArc(c, [shoulder[0] - r, shoulder[1] - r, shoulder[0] + r, shoulder[1] + r], 0, 360, 255, r);
      return canvasMask(c);
    };
    const right = side(pt(R_SHOULDER), pt(R_ELBOW), pt(R_WRIST), armsRight, false);
    const left = side(pt(L_SHOULDER), pt(L_ELBOW), pt(L_WRIST), armsLeft, true);
    // Hands: arm pixels outside the drawn arms stay as they are.
    fixed = or(fixed, andNot(armsLeft, left), andNot(armsRight, right));
    armsDrawn = or(left, right);
  }
  fixed = or(erodeRect(fixed, width, height, 5), head);
  parseMask = dilateRect(parseMask, width, height, 10, 5);
  if (armsDrawn) {
    const neck = andNot(dilateRect(labelsIn(parsing, [L.neck]), width, height, 5), head);
    parseMask = or(parseMask, neck, dilateRect(armsDrawn, width, height, 5, 4));
  }
  const keep = or(andNot(changeable, parseMask), fixed);
  const inpaint = keep.map((v) => (v ? 0 : 255));
  return largestContourFill(holeFill(inpaint, width, height), width, height);
}

function maskDc({ parsing, height, width, pt, category }: Inputs): Uint8Array {
  const L = LEFFA_LABELS;
  const head = labelsIn(parsing, [L.hat, L.hair, L.sunglasses, L.head, L.neck]);
  let fixed = labelsIn(parsing, [L.hair, L.left_shoe, L.right_shoe, L.hat, L.sunglasses, L.scarf, L.bag]);
  const arms = labelsIn(parsing, [L.left_arm, L.right_arm]);
  let parseMask: Mask;
  if (category === 'dresses') {
    parseMask = labelsIn(parsing, [L.dress, L.left_leg, L.right_leg]);
  } else if (category === 'upper_body') {
    parseMask = labelsIn(parsing, [L.upper_clothes]);
    fixed = or(fixed, labelsIn(parsing, [L.skirt, L.pants]));
  } else {
    parseMask = labelsIn(parsing, [L.pants, L.left_leg, L.right_leg]);
    fixed = or(fixed, labelsIn(parsing, [L.upper_clothes, L.left_arm, L.right_arm]));
  }
  const changeable = fixed.map((v) => (v ? 0 : 1));

  let headKept = head;
  if (category !== 'lower_body') {
    const [sr, sl, er, el, wr, wl] = [R_SHOULDER, L_SHOULDER, R_ELBOW, L_ELBOW, R_WRIST, L_WRIST].map(pt) as [
      number,
      number,
    ][];
    // One polyline through both arms and shoulders; Leffa leaves out the end of an arm whose wrist is missing.
    let chain: [number, number][];
    if (missing(wr!)) chain = missing(er!) ? [wl!, el!, sl!, sr!] : [wl!, el!, sl!, sr!, er!];
    else if (missing(wl!)) chain = missing(el!) ? [sl!, sr!, er!, wr!] : [el!, sl!, sr!, er!, wr!];
    else chain = [wl!, el!, sl!, sr!, er!, wr!];
    const c = newCanvas(width, height);
    drawLine(c, chain, 255, 30, true);
    let drawn = canvasMask(c);
    if (height > 512) drawn = dilateRect(drawn, width, height, 10, 5);
    else if (height > 256) drawn = dilateRect(drawn, width, height, 5, 5);
    parseMask = or(parseMask, drawn);
    fixed = or(fixed, andNot(arms, drawn));

    // The neck: head pixels below the shoulder line (less 20 px at 512) join the garment region.
    headKept = neckCut(head, width, height, sr!, sl!);
  }
  fixed = or(fixed, headKept);
  parseMask = or(parseMask, andNot(head, headKept));
  const k = height > 512 ? 20 : height > 256 ? 10 : 5;
  parseMask = dilateRect(parseMask, width, height, k, 5);
  const keep = or(andNot(changeable, parseMask), fixed);
  return holeFill(
    keep.map((v) => (v ? 0 : 255)),
    width,
    height,
  );
}

/**
 * Leffa's neck removal in get_agnostic_mask_dc: the line through both shoulders (numpy's lstsq; the
 * minimum-norm solution when they share an x), and for every column x the head pixels from row
 * int(m x + c - 20 height / 512) down are dropped, that row read as a Python slice start (negative counts
 * from the bottom).
 */
function neckCut(head: Mask, width: number, height: number, sr: [number, number], sl: [number, number]): Mask {
  let m: number;
  let c: number;
  if (sr[0] !== sl[0]) {
    m = (sl[1] - sr[1]) / (sl[0] - sr[0]);
    c = sr[1] - m * sr[0];
  } else {
    const ybar = (sr[1] + sl[1]) / 2;
    const x = sr[0];
    m = (ybar * x) / (x * x + 1);
    c = ybar / (x * x + 1);
  }
  const out = head.slice();
  for (let x = 0; x < width; x++) {
    let from = Math.trunc(x * m + c - 20 * (height / 512));
    if (from < 0) from = Math.max(0, height + from);
    for (let y = from; y < height; y++) out[y * width + x] = 0;
  }
  return out;
}
