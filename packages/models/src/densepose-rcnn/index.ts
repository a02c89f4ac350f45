export * from './backbone.js';
export * from './rcnn.js';
