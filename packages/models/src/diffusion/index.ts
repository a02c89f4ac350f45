export * from './attention.js';
export * from './reference.js';
export * from './resnet.js';
export * from './transformer.js';
export * from './unet-blocks.js';
export * from './unet.js';
export * from './vae.js';
export * from './leffa-model.js';
