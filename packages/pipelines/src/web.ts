/**
 * The browser-safe part of the package (no Node modules): the photo pipeline, the checkpoint-backed model
 * loaders (open checkpoints with `T.openCheckpointUrl`) and the released Leffa pipeline given its models.
 */
export * from './photo.js';
export {
  PHOTO_CHECK_LIMITS,
  PhotoCheckError,
  type PhotoCheckInput,
  type PhotoCheckLimits,
  SHIPPED_PARSERS_HINT,
  SHIPPED_PHOTO_CHECK_LIMITS,
  faceDisc,
  photoProblems,
} from './photo-checks.js';
export * from './model-checkpoints.js';
export * from './densepose-render.js';
export * from './diffusers-config.js';
export * from './released-leffa-transform.js';
export * from './released-leffa.js';
export * from './leffa-schedule.js';
export * from './leffa-masks.js';
export type { GarmentCategory, RgbImage } from '@leffa-webgpu/data/web';
