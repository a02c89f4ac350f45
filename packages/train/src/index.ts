/** Training: the Leffa, VAE, OpenPose, SCHP and DensePose trainers, their metrics and evaluation. */
export * from './trainer.js';
export * from './leffa/trainer.js';
export * from './leffa/reference-readout.js';
export * from './leffa/reference-mass.js';
export * from './leffa/vae-trainer.js';
export * from './leffa/metrics.js';
export * from './leffa/evaluate.js';
export * from './openpose/index.js';
export * from './schp/index.js';
export * from './densepose/index.js';
