/**
 * Signs that the preprocessing failed on a photo, checked before Leffa runs: no person or too few keypoints, a
 * person OpenPose is not confident about, a try-on mask that is empty or covers the face, a human parsing and a
 * DensePose that disagree on where the person is. The shipped small
 * preprocessing networks learned only synthetic people and fail this way on real photos (they find a few or
 * made-up keypoints, and the agnostic mask lands on the face), so the error points to Leffa's released weights.
 */
import type { LeffaTask } from '@leffa-webgpu/data/web';

/** A keypoint in image pixels; `visible` false where OpenPose found no such part. */
export interface PhotoKeypoint {
  x: number;
  y: number;
  score: number;
  visible: boolean;
}

export interface PhotoCheckLimits {
  /** Fewest of the 18 OpenPose body points found. */
  minKeypoints: number;
  /** Lowest mean OpenPose score of the points found. */
  minMeanScore: number;
  /** Largest share of the face disc (around nose, eyes and ears) that a try-on mask may cover. */
  maxFaceMasked: number;
  /** Lowest intersection-over-union of the parser's and DensePose's person pixels (try-on). */
  minParserAgreement: number;
}

/** Limits for any preprocessing networks: only plain failures. */
export const PHOTO_CHECK_LIMITS: PhotoCheckLimits = {
  minKeypoints: 8,
  minMeanScore: 0.3,
  maxFaceMasked: 0.3,
  minParserAgreement: 0.2,
};

/**
 * Limits for the shipped networks, measured at 128x96 on 40 held-out synthetic people: at least 17 points, mean
 * score >= 0.79, no face masked, SCHP / DensePose person IoU >= 0.50. On scikit-image's astronaut portrait they find
 * 4 points at mean score 0.29 (whole photo, IoU 0.01), or 18 made-up ones (legs below a bust) at mean score 0.57
 * with IoU 0.27 (portrait crop).
 */
export const SHIPPED_PHOTO_CHECK_LIMITS: PhotoCheckLimits = {
  minKeypoints: 8,
  minMeanScore: 0.7,
  maxFaceMasked: 0.3,
  minParserAgreement: 0.4,
};

export interface PhotoCheckInput {
  task: LeffaTask;
  width: number;
  height: number;
  /** The 18 OpenPose body points of the chosen person (empty when none was found). */
  keypoints: readonly PhotoKeypoint[];
  /** Try-on: the agnostic mask (non-zero = regenerated), width x height. */
  mask?: Uint8Array;
  /** Try-on: the person pixels of the human parsing and of DensePose (non-zero = person), width x height. */
  parsingForeground?: Uint8Array;
  denseposeForeground?: Uint8Array;
}

const NOSE = 0;
const NECK = 1;
const R_SHOULDER = 2;
const L_SHOULDER = 5;
const FACE = [0, 14, 15, 16, 17]; // nose, eyes, ears

/**
 * The face disc: centred on the face points found, radius half the nose-neck distance (or the spread of the
 * face points when there is no neck); null without any face point.
 */
export function faceDisc(keypoints: readonly PhotoKeypoint[]): { x: number; y: number; r: number } | null {
  const face = FACE.map((i) => keypoints[i]).filter((k): k is PhotoKeypoint => !!k?.visible);
  if (face.length === 0) return null;
  const x = face.reduce((a, k) => a + k.x, 0) / face.length;
  const y = face.reduce((a, k) => a + k.y, 0) / face.length;
  const nose = keypoints[NOSE];
  const neck = keypoints[NECK];
  let r: number;
  if (nose?.visible && neck?.visible) r = 0.5 * Math.hypot(nose.x - neck.x, nose.y - neck.y);
  else r = Math.max(...face.map((k) => Math.hypot(k.x - x, k.y - y)));
  return r >= 1 ? { x, y, r } : null;
}

/** Every failed check, as a sentence each (empty when the photo looks usable). */
export function photoProblems(input: PhotoCheckInput, limits: PhotoCheckLimits = PHOTO_CHECK_LIMITS): string[] {
  const { task, width, height, keypoints, mask, parsingForeground: fa, denseposeForeground: fb } = input;
  for (const [name, m] of [
    ['mask', mask],
    ['parsingForeground', fa],
    ['denseposeForeground', fb],
  ] as const) {
    if (m && m.length !== width * height)
      throw new Error(`photoProblems: ${name} has ${m.length} values, ${width}x${height} needs ${width * height}`);
  }
  const problems: string[] = [];
  const found = keypoints.filter((k) => k.visible);
  if (found.length === 0) return ['OpenPose found no person'];
  if (found.length < limits.minKeypoints) {
    problems.push(`OpenPose found only ${found.length} of 18 body points (at least ${limits.minKeypoints} needed)`);
  }
  const mean = found.reduce((a, k) => a + k.score, 0) / found.length;
  if (mean < limits.minMeanScore)
    problems.push(
      `OpenPose is not confident about the person (mean point score ${mean.toFixed(2)} < ${limits.minMeanScore})`,
    );
  if (task === 'tryon') {
    const missing = [NECK, R_SHOULDER, L_SHOULDER].filter((i) => !keypoints[i]?.visible);
    if (missing.length)
      problems.push(
        `OpenPose found no ${missing.map((i) => ['', 'neck', 'right shoulder', '', '', 'left shoulder'][i]).join(', ')} (the agnostic mask needs them)`,
      );
    if (mask) {
      if (!mask.some((v) => v))
        problems.push('the agnostic mask is empty (no garment or arms found): nothing would be regenerated');
      const disc = faceDisc(keypoints);
      if (disc) {
        let inside = 0;
        let covered = 0;
        for (
          let y = Math.max(0, Math.floor(disc.y - disc.r));
          y <= Math.min(height - 1, Math.ceil(disc.y + disc.r));
          y++
        ) {
          for (
            let x = Math.max(0, Math.floor(disc.x - disc.r));
            x <= Math.min(width - 1, Math.ceil(disc.x + disc.r));
            x++
          ) {
            if ((x - disc.x) ** 2 + (y - disc.y) ** 2 > disc.r * disc.r) continue;
            inside++;
            if (mask[y * width + x]) covered++;
          }
        }
        if (inside > 0 && covered / inside > limits.maxFaceMasked) {
          problems.push(
            `the agnostic mask covers ${Math.round((100 * covered) / inside)}% of the face (more than ${Math.round(100 * limits.maxFaceMasked)}%): the face would be regenerated`,
          );
        }
      }
    }
    if (fa && fb) {
      let inter = 0;
      let union = 0;
      for (let i = 0; i < fa.length; i++) {
        if (fa[i] && fb[i]) inter++;
        if (fa[i] || fb[i]) union++;
      }
      const iou = union ? inter / union : 0;
      if (iou < limits.minParserAgreement) {
        problems.push(
          `the human parsing and DensePose disagree on where the person is (IoU ${iou.toFixed(2)} < ${limits.minParserAgreement})`,
        );
      }
    }
  }
  return problems;
}

/** What to do about it, for the shipped preprocessing networks. */
export const SHIPPED_PARSERS_HINT =
  'The shipped preprocessing networks (openpose-small, schp-small, densepose-small) learned only synthetic people ' +
  "and do not work on real photos: run with Leffa's released weights instead (`--ckpts <folder>`, the folder of " +
  "Leffa's released checkpoints; see the pipelines README).";

/** The preprocessing of a photo failed its checks (`problems`); the message says what to do. */
export class PhotoCheckError extends Error {
  constructor(
    readonly problems: string[],
    hint: string = SHIPPED_PARSERS_HINT,
  ) {
    super(`the photo preprocessing failed: ${problems.join('; ')}. ${hint}`);
    this.name = 'PhotoCheckError';
  }
}
