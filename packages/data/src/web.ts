/**
 * The browser-safe part of the package (no Node modules): the synthetic person generator, augmentation, in-memory
 * image helpers, the PNG codec (with its decompression-bomb limit) and the Leffa example/batch format.
 */
export * from './synthetic/index.js';
export * from './augment.js';
export * from './io/resize.js';
export * from './io/images.js';
export * from './io/png.js';
export * from './io/image-limits.js';
export * from './leffa/batch.js';
export * from './leffa/flow-supervision.js';
export * from './leffa/synthetic-source.js';
export * from './openpose/ground-truth.js';
