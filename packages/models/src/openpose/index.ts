export * from './network.js';
export * from './assemble.js';
export * from './infer.js';
export * from './render.js';
