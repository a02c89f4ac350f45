export {
  Optimizer,
  type BaseHyper,
  type ParamGroup,
  type ParamGroupSpec,
  type ParamsInput,
  type OptimizerMeta,
  type OptimizerStateDict,
} from './optimizer.js';
export { SGD, type SGDOptions } from './sgd.js';
export { Adam, AdamW, type AdamOptions, type AdamWOptions } from './adam.js';
export { clipGradNorm } from './clip-grad.js';
export { EMA, type EMAOptions, type EMAWarmup, type EMAMeta, type EMAStateDict } from './ema.js';
export * from './schedules.js';
