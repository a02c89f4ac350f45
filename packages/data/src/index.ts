/** Data for training and inference: everything in `./web`, plus the image codecs and dataset loaders that read files. */
export * from './web.js';
export * from './io/png.js';
export * from './io/image-file.js';
export * from './io/image-limits.js';
export * from './datasets/index.js';
