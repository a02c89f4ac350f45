/**
 * The browser-safe part of the package (no Node modules): the photo pipeline, the synthetic person
 * generator, image helpers and the checkpoint-backed model loaders (open checkpoints with `T.openCheckpointUrl`).
 */
export * from './pipeline/photo.js';
export * from './pipeline/model-checkpoints.js';
export * from './data/synthetic/index.js';
export * from './io/resize.js';
export * from './io/images.js';
export * from './leffa/batch.js';
export type { RgbImage } from './io/png.js';
