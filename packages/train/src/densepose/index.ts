export * from './losses.js';
export * from './trainer.js';
export * from './metrics.js';
