export * from './edges.js';
export * from './losses.js';
export * from './noise.js';
export * from './trainer.js';
export * from './metrics.js';
