export * from './noise-schedule.js';
export * from './sampler.js';
export * from './ddpm.js';
export * from './ddim.js';
