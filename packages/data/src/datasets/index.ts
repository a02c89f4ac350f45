import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LeffaTask } from '../leffa/synthetic-source.js';
import type { FolderDataset } from './common.js';
import { DeepFashionDataset } from './deepfashion.js';
import { DressCodeDataset } from './dresscode.js';
import { VitonHdDataset } from './viton-hd.js';

export * from './coco-keypoints.js';
export * from './common.js';
export * from './deepfashion.js';
export * from './dresscode.js';
export * from './viton-hd.js';

/**
 * Opens a dataset folder, recognising its layout: VITON-HD (`train_pairs.txt` next to `train/`), DressCode
 * (`upper_body/`, `lower_body/` or `dresses/` with pair lists; `category` picks one) or DeepFashion pose pairs
 * (`fashion-resize-pairs-train.csv`). `split` selects the training or the test list.
 */
export function openDataset(
  root: string,
  options: { split?: 'train' | 'test'; category?: 'upper_body' | 'lower_body' | 'dresses'; task?: LeffaTask } = {},
): FolderDataset {
  const split = options.split ?? 'train';
  if (!existsSync(root)) throw new Error(`openDataset: folder ${root} does not exist`);
  let dataset: FolderDataset;
  if (existsSync(join(root, `${split}_pairs.txt`)) && existsSync(join(root, split)))
    dataset = new VitonHdDataset(root, split);
  else if (existsSync(join(root, `fashion-resize-pairs-${split}.csv`))) dataset = new DeepFashionDataset(root, split);
  else if (['upper_body', 'lower_body', 'dresses'].some((c) => existsSync(join(root, c)))) {
    const category =
      options.category ?? (['upper_body', 'lower_body', 'dresses'] as const).find((c) => existsSync(join(root, c)))!;
    dataset = new DressCodeDataset(root, category, split === 'train' ? 'train' : 'test_paired');
  } else {
    throw new Error(
      `openDataset: ${root} is not a known layout: expected ${split}_pairs.txt + ${split}/ (VITON-HD), upper_body/|lower_body/|dresses/ (DressCode) or fashion-resize-pairs-${split}.csv (DeepFashion)`,
    );
  }
  if (options.task && dataset.task !== options.task)
    throw new Error(
      `openDataset: ${root} is a ${dataset.layout} ${dataset.task} dataset, but the task is ${options.task}`,
    );
  return dataset;
}
