export * from './ground-truth.js';
export * from './trainer.js';
