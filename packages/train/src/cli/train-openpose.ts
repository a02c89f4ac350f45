import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import * as T from '@leffa-webgpu/core';
import {
  OPENPOSE_SMALL,
  type ScaleAccumulation,
  estimatePose,
  renderSkeleton,
  toOpenPoseJson,
} from '@leffa-webgpu/models';
import { CocoKeypointsDataset, readImage, syntheticPoseExample, tile, writePng } from '@leffa-webgpu/data';
import { OpenPoseTrainer, pck } from '../openpose/trainer.js';
import { loadOpenPose } from '@leffa-webgpu/pipelines';
import type { TrainingArgs } from './presets.js';
import { withRunLock } from './run-guard.js';
import { runTraining } from './training-loop.js';

const HELD_OUT = 800_000_000;

export interface TrainOpenPoseArgs extends TrainingArgs {
  optimizer: 'adamw' | 'sgd';
  evalExamples: number;
  /** A COCO keypoints folder (annotations/person_keypoints_<split>.json + <split>/) instead of synthetic people. */
  data?: string;
  split?: string;
  valSplit?: string;
}

/**
 * Trains the small OpenPose model on synthetic people; writes a checkpoint, PCK@0.2 and sample skeletons (holding
 * the lock of `out`; a non-finite loss stops the run, keeping the last good checkpoint: see run-guard.ts).
 */
export async function trainOpenPose(args: TrainOpenPoseArgs): Promise<void> {
  await withRunLock(args.out, 'train-openpose', () => trainOpenPoseLocked(args));
}

async function trainOpenPoseLocked(args: TrainOpenPoseArgs): Promise<void> {
  await T.init();
  await mkdir(args.out, { recursive: true });
  // The recorded box size is twice the training height: `pose` shows the network its training-size people (README).
  const config = { ...OPENPOSE_SMALL, boxsize: 2 * args.height };
  const trainer = new OpenPoseTrainer({ config, seed: args.seed, lr: args.lr, optimizer: args.optimizer });
  const coco = args.data
    ? new CocoKeypointsDataset(args.data, args.split ?? 'train2017', { height: args.height, width: args.width })
    : null;
  const example = (i: number) => (coco ? coco.example(i) : syntheticPoseExample(i, args.height, args.width));
  if (coco) console.log(`train-openpose: ${coco.length} people from ${args.data} (${args.split ?? 'train2017'})`);
  const { history } = await runTraining(args, {
    command: 'train-openpose',
    trainer,
    logEvery: 10,
    logLast: false,
    step: () => {
      // The step number fixes the examples, so a resumed run sees the same data.
      const first = args.seed * 7919 + trainer.stepCount * args.batch;
      return trainer.step(Array.from({ length: args.batch }, (_, i) => example(first + i)));
    },
    read: async (loss) => ({ loss: await loss.item() }),
    series: [['loss', 'loss']],
    legacyName: 'loss',
  });
  // Held out: the validation split of a COCO folder when it has one, else synthetic people never trained on.
  const valSplit = args.valSplit ?? 'val2017';
  const val =
    args.data && existsSync(`${args.data}/annotations/person_keypoints_${valSplit}.json`)
      ? new CocoKeypointsDataset(args.data, valSplit, { height: args.height, width: args.width })
      : null;
  const held = Array.from({ length: val ? Math.min(args.evalExamples, val.length) : args.evalExamples }, (_, i) =>
    val ? val.example(i) : syntheticPoseExample(HELD_OUT + i, args.height, args.width),
  );
  const score = await pck(trainer.model, held);
  const shown = await Promise.all(
    held
      .slice(0, 6)
      .map((e) =>
        estimatePose(
          trainer.model,
          { width: e.width, height: e.height, data: e.image },
          { scales: [1], boxsize: e.height },
        ),
      ),
  );
  await writePng(
    `${args.out}/skeletons.png`,
    tile(
      [held.slice(0, 6).map((e) => e.image), shown.map((r) => renderSkeleton(r.people, args.width, args.height, 2))],
      args.width,
      args.height,
    ),
  );
  await writeFile(
    `${args.out}/metrics.json`,
    `${JSON.stringify({ steps: trainer.stepCount, pck02: score, heldOut: held.length, heldOutFrom: val ? `${args.data} (${valSplit})` : 'synthetic', history }, null, 2)}\n`,
  );
  console.log(
    `PCK@0.2 on ${held.length} held-out ${val ? `people of ${valSplit}` : 'synthetic people'}: ${score.toFixed(3)}`,
  );
}

/** Body pose of one image: OpenPose JSON and the rendered skeleton. */
export interface PoseArgs {
  image: string;
  ckpt: string;
  out: string;
  /** body.py's scale_search ([0.5]). */
  scales: number[];
  /** body.py's boxsize; default the model's config. */
  boxsize?: number;
  /** 'image': scales are fractions of the image's own height (boxsize = image height), the earlier behaviour. */
  scaleBasis?: 'box' | 'image';
  /** How heatmaps of several scales combine: 'body.py' (default, as released) or 'mean'. */
  scaleAccumulation?: ScaleAccumulation;
}

export async function pose(args: PoseArgs): Promise<void> {
  await T.init();
  const img = readImage(args.image);
  // A checkpoint folder (its recorded config, else the small one) or an official body_pose_model.pth.
  const model = await loadOpenPose(args.ckpt);
  if (args.scaleBasis === 'image' && args.boxsize !== undefined)
    throw new Error(
      'pose: --boxsize and --scale-basis image contradict each other (image uses the image height as the box)',
    );
  const boxsize = args.scaleBasis === 'image' ? img.height : args.boxsize;
  const result = await estimatePose(
    model,
    { width: img.width, height: img.height, data: img.data },
    { scales: args.scales, boxsize, scaleAccumulation: args.scaleAccumulation },
  );
  await mkdir(args.out, { recursive: true });
  await writeFile(`${args.out}/keypoints.json`, `${JSON.stringify(toOpenPoseJson(result.people), null, 2)}\n`);
  await writePng(`${args.out}/skeleton.png`, {
    width: img.width,
    height: img.height,
    data: renderSkeleton(result.people, img.width, img.height),
  });
  console.log(`${result.people.length} people; wrote ${args.out}/keypoints.json and skeleton.png`);
}
