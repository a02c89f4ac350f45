export * from './network.js';
export * from './infer.js';
