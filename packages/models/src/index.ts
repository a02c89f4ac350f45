export * from './schedulers/index.js';
