export * from './network.js';
export * from './labels.js';
export * from './infer.js';
export * from './leffa-parsing.js';
export * from './schedule.js';
export * from './lovasz.js';
