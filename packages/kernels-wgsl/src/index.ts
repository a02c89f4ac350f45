export * from './kernel.js';
export * from './elementwise.js';
export * from './copy.js';
export * from './reduce.js';
export * from './matmul.js';
export * from './random.js';
export * from './softmax.js';
export * from './optim.js';
