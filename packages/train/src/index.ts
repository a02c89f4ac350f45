export * from './data/synthetic/index.js';
export * from './io/png.js';
export * from './leffa/batch.js';
export * from './leffa/trainer.js';
export * from './leffa/synthetic-source.js';
export * from './leffa/vae-trainer.js';
export * from './leffa/metrics.js';
