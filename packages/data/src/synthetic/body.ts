import { Band, Ellipse, type Shape } from './shapes.js';
import type { BodyShape, Point, Skeleton } from './skeleton.js';

/** Body parts; 'r' / 'l' are the person's right / left (image left / right for a front-facing person). */
export type PartId =
  | 'torso'
  | 'neck'
  | 'head'
  | 'rUpperArm'
  | 'rLowerArm'
  | 'rHand'
  | 'rElbow'
  | 'lUpperArm'
  | 'lLowerArm'
  | 'lHand'
  | 'lElbow'
  | 'rUpperLeg'
  | 'rLowerLeg'
  | 'rFoot'
  | 'rKnee'
  | 'lUpperLeg'
  | 'lLowerLeg'
  | 'lFoot'
  | 'lKnee';

/**
 * DensePose part index (detectron2's 24 parts) of each body part seen from the front: 2 torso, 3 right hand,
 * 4 left hand, 5 left foot, 6 right foot, 9/10 upper leg right/left, 13/14 lower leg right/left,
 * 17/18 upper arm left/right, 21/22 lower arm left/right, 24 head (the front member of each front/back pair).
 */
export const DENSEPOSE_INDEX: Record<PartId, number> = {
  torso: 2,
  neck: 2,
  head: 24,
  rUpperArm: 18,
  rElbow: 18,
  rLowerArm: 22,
  rHand: 3,
  lUpperArm: 17,
  lElbow: 17,
  lLowerArm: 21,
  lHand: 4,
  rUpperLeg: 9,
  rKnee: 9,
  rLowerLeg: 13,
  rFoot: 6,
  lUpperLeg: 10,
  lKnee: 10,
  lLowerLeg: 14,
  lFoot: 5,
};

export interface Part {
  id: PartId;
  shape: Shape;
}

const mid = (a: Point, b: Point, f = 0.5): Point => ({ x: a.x + (b.x - a.x) * f, y: a.y + (b.y - a.y) * f });
const angleOf = (a: Point, b: Point) => Math.atan2(b.x - a.x, b.y - a.y);

/**
 * The body's parts in drawing order (later parts are on top): legs, torso, neck, arms, head. Sizes come from
 * the body shape, positions from the skeleton (in pixels, `scale` pixels per body height).
 */
export function buildParts(body: BodyShape, sk: Skeleton, scale: number): Part[] {
  const k = sk.keypoints;
  const [neck, rSh, rEl, rWr, lSh, lEl, lWr, rHip, rKn, rAn, lHip, lKn, lAn] = [
    k[1]!,
    k[2]!,
    k[3]!,
    k[4]!,
    k[5]!,
    k[6]!,
    k[7]!,
    k[8]!,
    k[9]!,
    k[10]!,
    k[11]!,
    k[12]!,
    k[13]!,
  ];
  const ar = body.armRadius * scale;
  const lr = body.legRadius * scale;
  const shoulderMid = mid(rSh, lSh);
  const hipMid = mid(rHip, lHip);
  // The torso band runs from the shoulder line to just below the hips, wide enough to cover the shoulder joints.
  const torsoTop = shoulderMid;
  const torsoBottom = mid(shoulderMid, hipMid, 1.12);
  const torsoTopHalf = Math.hypot(lSh.x - rSh.x, lSh.y - rSh.y) / 2 + ar * 0.6;
  const torsoBottomHalf = Math.hypot(lHip.x - rHip.x, lHip.y - rHip.y) / 2 + lr * 0.9;
  const limb = (a: Point, b: Point, ra: number, rb: number) => new Band(a, b, ra, rb);
  const hand = (elbow: Point, wrist: Point) => {
    const a = angleOf(elbow, wrist);
    return new Ellipse(
      { x: wrist.x + Math.sin(a) * ar * 0.9, y: wrist.y + Math.cos(a) * ar * 0.9 },
      ar * 0.85,
      ar * 1.25,
      -a,
    );
  };
  const foot = (ankle: Point, side: 1 | -1) =>
    new Ellipse({ x: ankle.x + side * lr * 0.45, y: ankle.y + lr * 0.35 }, lr * 1.15, lr * 0.55, 0);
  const joint = (p: Point, r: number) => new Ellipse(p, r, r, 0);
  return [
    { id: 'rFoot', shape: foot(rAn, -1) },
    { id: 'lFoot', shape: foot(lAn, 1) },
    { id: 'rLowerLeg', shape: limb(rKn, rAn, lr * 0.85, lr * 0.55) },
    { id: 'lLowerLeg', shape: limb(lKn, lAn, lr * 0.85, lr * 0.55) },
    { id: 'rKnee', shape: joint(rKn, lr * 0.85) },
    { id: 'lKnee', shape: joint(lKn, lr * 0.85) },
    { id: 'rUpperLeg', shape: limb(rHip, rKn, lr * 1.1, lr * 0.85) },
    { id: 'lUpperLeg', shape: limb(lHip, lKn, lr * 1.1, lr * 0.85) },
    { id: 'torso', shape: new Band(torsoTop, torsoBottom, torsoTopHalf, torsoBottomHalf) },
    { id: 'neck', shape: limb(mid(neck, sk.headCenter, 0.35), shoulderMid, ar * 0.9, ar * 1.05) },
    { id: 'rUpperArm', shape: limb(rSh, rEl, ar * 1.05, ar * 0.85) },
    { id: 'lUpperArm', shape: limb(lSh, lEl, ar * 1.05, ar * 0.85) },
    { id: 'rElbow', shape: joint(rEl, ar * 0.85) },
    { id: 'lElbow', shape: joint(lEl, ar * 0.85) },
    { id: 'rLowerArm', shape: limb(rEl, rWr, ar * 0.85, ar * 0.65) },
    { id: 'lLowerArm', shape: limb(lEl, lWr, ar * 0.85, ar * 0.65) },
    { id: 'rHand', shape: hand(rEl, rWr) },
    { id: 'lHand', shape: hand(lEl, lWr) },
    { id: 'head', shape: new Ellipse(sk.headCenter, body.headRx * scale, body.headRy * scale, sk.headAngle) },
  ];
}
