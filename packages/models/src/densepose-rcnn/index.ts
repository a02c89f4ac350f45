export * from './backbone.js';
export * from './rcnn.js';
export * from './chart-head.js';
export * from './resize.js';
export * from './leffa-outputs.js';
export * from './released.js';
