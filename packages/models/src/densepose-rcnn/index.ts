export * from './backbone.js';
