export * from './module.js';
export * from './layers.js';
export * from './conv.js';
export * from './normalization.js';
export * from './activation.js';
export * from './pooling.js';
export * from './embedding.js';
export * from './offload.js';
