/** Data for training and inference: everything in `./web`, plus the image files (JPEG decoding, file readers and writers) and the dataset loaders. */
export * from './web.js';
export * from './io/image-file.js';
export { loadSharp, type SharpStatus } from './io/sharp.js';
export * from './datasets/index.js';
