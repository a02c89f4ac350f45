export * from './schedulers/index.js';
export * from './diffusion/index.js';
export * from './pipelines/index.js';
export * from './openpose/index.js';
export * from './schp/index.js';
export * from './densepose/index.js';
export * from './densepose-rcnn/index.js';
export * from './onnx/index.js';
