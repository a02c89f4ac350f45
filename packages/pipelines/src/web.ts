/**
 * The browser-safe part of the package (no Node modules): the photo pipeline and the checkpoint-backed model
 * loaders (open checkpoints with `T.openCheckpointUrl`).
 */
export * from './photo.js';
export { PHOTO_CHECK_LIMITS, PhotoCheckError, type PhotoCheckInput, type PhotoCheckLimits, SHIPPED_PARSERS_HINT, SHIPPED_PHOTO_CHECK_LIMITS, faceDisc, photoProblems } from './photo-checks.js';
export * from './model-checkpoints.js';
export * from './densepose-render.js';
export * from './leffa-masks.js';
export type { GarmentCategory, RgbImage } from '@leffa-webgpu/data/web';
