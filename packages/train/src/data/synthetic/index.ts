export * from './sample.js';
export * from './render.js';
export * from './agnostic.js';
export * from './densepose.js';
export * from './sheet.js';
export { KEYPOINT_NAMES } from './skeleton.js';
export { Rng } from './rng.js';
