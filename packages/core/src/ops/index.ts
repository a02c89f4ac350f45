import './methods.js';

export * from './creation.js';
export * from './random.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './shape.js';
export * from './matmul.js';
export * from './softmax.js';
export { emptyTensor } from './launch.js';
export * from './conv.js';
export * from './normalization.js';
export * from './resample.js';
export * from './grid-sample.js';
export * from './cast.js';
export * from './embedding.js';
export * from './losses.js';
export * from './attention.js';
