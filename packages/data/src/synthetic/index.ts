export * from './sample.js';
export * from './render.js';
export * from './agnostic.js';
export * from './densepose.js';
export * from './sheet.js';
export { KEYPOINT_NAMES } from './skeleton.js';
export { Rng } from './rng.js';
// Building blocks the trainers and tests compose (label morphology, body parts, garments, poses).
export { regionsOf } from './morphology.js';
export { buildParts } from './body.js';
export { sampleLowerGarment, sampleUpperGarment } from './garment.js';
export { type Pose, buildSkeleton, sampleBodyShape, samplePose } from './skeleton.js';
