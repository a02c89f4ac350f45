import type { BenchCase } from '../case.js';
import { adamwCase } from './adamw.js';
import { attentionCases } from './attention.js';
import { conv2dCases } from './conv2d.js';
import { dispatchCases } from './dispatch.js';
import { groupNormCases } from './group-norm.js';
import { matmulCases } from './matmul.js';
import { sd15BlockCases } from './sd15-blocks.js';
import { softmaxCase } from './softmax.js';
import { sortCase } from './sort.js';
import { unetTrainStepCase } from './unet-train-step.js';
import { vaeTrainStepCase } from './vae-train-step.js';

/** Every benchmark, in report order. New cases: one file in this folder, one line here. */
export const CASES: BenchCase[] = [
  ...matmulCases,
  ...conv2dCases,
  ...groupNormCases,
  ...attentionCases,
  adamwCase,
  ...sd15BlockCases,
  unetTrainStepCase,
  vaeTrainStepCase,
  ...dispatchCases,
  softmaxCase,
  sortCase,
];
