/** Inference: everything in `./web`, plus official-weights loading, Leffa's human parsing, the released Leffa folder and the shipped checkpoints (Node). */
export * from './web.js';
export * from './load-models.js';
export * from './leffa-parsing.js';
export * from './assets.js';
export * from './released-leffa-folder.js';
