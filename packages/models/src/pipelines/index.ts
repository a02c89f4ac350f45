export * from './leffa-pipeline.js';
