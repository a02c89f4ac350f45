import type { Rng } from './rng.js';

/** The 18 COCO keypoints in OpenPose order. */
export const KEYPOINT_NAMES = [
  'nose',
  'neck',
  'r_shoulder',
  'r_elbow',
  'r_wrist',
  'l_shoulder',
  'l_elbow',
  'l_wrist',
  'r_hip',
  'r_knee',
  'r_ankle',
  'l_hip',
  'l_knee',
  'l_ankle',
  'r_eye',
  'l_eye',
  'r_ear',
  'l_ear',
] as const;

export type Point = { x: number; y: number };

/** Body proportions of one identity, in units of the person's height. */
export interface BodyShape {
  height: number;
  shoulderHalf: number;
  hipHalf: number;
  upperArm: number;
  lowerArm: number;
  upperLeg: number;
  lowerLeg: number;
  neck: number;
  headRx: number;
  headRy: number;
  armRadius: number;
  legRadius: number;
  torsoLength: number;
}

export function sampleBodyShape(rng: Rng): BodyShape {
  const j = (v: number, pct: number) => v * (1 + rng.uniform(-pct, pct));
  const girth = rng.uniform(0.85, 1.25);
  return {
    height: 1,
    shoulderHalf: j(0.115, 0.1) * girth,
    hipHalf: j(0.085, 0.12) * girth,
    upperArm: j(0.17, 0.06),
    lowerArm: j(0.15, 0.06),
    upperLeg: j(0.23, 0.05),
    lowerLeg: j(0.22, 0.05),
    neck: j(0.04, 0.15),
    headRx: j(0.055, 0.08),
    headRy: j(0.068, 0.08),
    armRadius: j(0.024, 0.12) * girth,
    legRadius: j(0.036, 0.12) * girth,
    torsoLength: j(0.3, 0.05),
  };
}

/** Joint angles of a pose (radians; 0 = straight down, positive = towards the image right). */
export interface Pose {
  lean: number;
  headTilt: number;
  rUpperArm: number;
  rLowerArm: number;
  lUpperArm: number;
  lLowerArm: number;
  rUpperLeg: number;
  rLowerLeg: number;
  lUpperLeg: number;
  lLowerLeg: number;
}

/**
 * A plausible front-facing pose: arms down, out, bent or raised within joint limits, legs apart or crossed a
 * little. The person's right side is on the image left (they face the camera).
 */
export function samplePose(rng: Rng): Pose {
  const style = rng.pick(['down', 'out', 'bent', 'hips', 'up', 'mixed'] as const);
  const arm = (side: 1 | -1): [number, number] => {
    // side: +1 for the image-right (person's left) arm.
    const s = side;
    switch (style === 'mixed' ? rng.pick(['down', 'out', 'bent', 'up'] as const) : style) {
      case 'down':
        return [s * rng.uniform(0.08, 0.3), s * rng.uniform(0, 0.2)];
      case 'out':
        return [s * rng.uniform(0.5, 1.2), s * rng.uniform(0.4, 1.1)];
      case 'bent':
        return [s * rng.uniform(0.15, 0.45), s * rng.uniform(-1.6, -0.6)];
      case 'hips':
        return [s * rng.uniform(0.5, 0.8), s * rng.uniform(-2.2, -1.7)];
      case 'up':
        return [s * rng.uniform(1.8, 2.6), s * rng.uniform(2.2, 2.9)];
    }
  };
  const [rUpperArm, rLowerArm] = arm(-1);
  const [lUpperArm, lLowerArm] = arm(1);
  const spread = rng.uniform(-0.05, 0.25);
  return {
    lean: rng.uniform(-0.06, 0.06),
    headTilt: rng.uniform(-0.2, 0.2),
    rUpperArm,
    rLowerArm,
    lUpperArm,
    lLowerArm,
    rUpperLeg: -spread + rng.uniform(-0.05, 0.05),
    rLowerLeg: -spread * rng.uniform(0, 0.6),
    lUpperLeg: spread + rng.uniform(-0.05, 0.05),
    lLowerLeg: spread * rng.uniform(0, 0.6),
  };
}

/** A direction at `angle` from straight down. */
const dir = (angle: number): Point => ({ x: Math.sin(angle), y: Math.cos(angle) });
const add = (p: Point, d: Point, len: number): Point => ({ x: p.x + d.x * len, y: p.y + d.y * len });

export interface Skeleton {
  /** Keypoints in image pixels, OpenPose order. */
  keypoints: Point[];
  /** Extra joints the renderer needs: shoulder line ends, hip line ends, head centre and rotation. */
  headCenter: Point;
  headAngle: number;
}

/**
 * Places the joints in image pixels: neck at `origin`, body scaled so that the person is `scale` pixels tall.
 */
export function buildSkeleton(body: BodyShape, pose: Pose, origin: Point, scale: number): Skeleton {
  const s = (v: number) => v * scale;
  const down = dir(pose.lean);
  const across: Point = { x: Math.cos(pose.lean), y: -Math.sin(pose.lean) };
  const neck = origin;
  const shoulderY = add(neck, down, s(body.neck * 0.6));
  const rShoulder = add(shoulderY, across, -s(body.shoulderHalf));
  const lShoulder = add(shoulderY, across, s(body.shoulderHalf));
  const pelvis = add(neck, down, s(body.torsoLength));
  const rHip = add(pelvis, across, -s(body.hipHalf));
  const lHip = add(pelvis, across, s(body.hipHalf));
  const rElbow = add(rShoulder, dir(pose.rUpperArm + pose.lean), s(body.upperArm));
  const rWrist = add(rElbow, dir(pose.rUpperArm + pose.rLowerArm + pose.lean), s(body.lowerArm));
  const lElbow = add(lShoulder, dir(pose.lUpperArm + pose.lean), s(body.upperArm));
  const lWrist = add(lElbow, dir(pose.lUpperArm + pose.lLowerArm + pose.lean), s(body.lowerArm));
  const rKnee = add(rHip, dir(pose.rUpperLeg + pose.lean), s(body.upperLeg));
  const rAnkle = add(rKnee, dir(pose.rUpperLeg + pose.rLowerLeg + pose.lean), s(body.lowerLeg));
  const lKnee = add(lHip, dir(pose.lUpperLeg + pose.lean), s(body.upperLeg));
  const lAnkle = add(lKnee, dir(pose.lUpperLeg + pose.lLowerLeg + pose.lean), s(body.lowerLeg));
  const headAngle = pose.lean + pose.headTilt;
  const up = dir(headAngle + Math.PI);
  const side: Point = { x: Math.cos(headAngle), y: -Math.sin(headAngle) };
  const headCenter = add(neck, up, s(body.neck * 0.5 + body.headRy));
  const face = (dx: number, dy: number): Point => ({
    x: headCenter.x + side.x * s(dx * body.headRx) - up.x * s(dy * body.headRy),
    y: headCenter.y + side.y * s(dx * body.headRx) - up.y * s(dy * body.headRy),
  });
  const keypoints = [
    face(0, 0.15),
    neck,
    rShoulder,
    rElbow,
    rWrist,
    lShoulder,
    lElbow,
    lWrist,
    rHip,
    rKnee,
    rAnkle,
    lHip,
    lKnee,
    lAnkle,
    face(-0.38, -0.15),
    face(0.38, -0.15),
    face(-0.95, -0.05),
    face(0.95, -0.05),
  ];
  return { keypoints, headCenter, headAngle };
}
