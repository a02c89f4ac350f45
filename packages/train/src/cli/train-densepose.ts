import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import * as T from '@leffa-webgpu/core';
import {
  DENSEPOSE_CONFIGS,
  DENSEPOSE_MIN_SIDE,
  DENSEPOSE_PART_NAMES,
  type CropBox,
  personCrop,
  predictIuv,
} from '@leffa-webgpu/models';
import { readImage, tile, writePng } from '@leffa-webgpu/data';
import { type DensePoseMetrics, evaluateDensePose } from '../densepose/metrics.js';
import { loadDensePose, renderDensePose } from '@leffa-webgpu/pipelines';
import { type DensePoseExample, DensePoseTrainer, syntheticDensePoseExample } from '../densepose/trainer.js';
import type { TrainingArgs } from './presets.js';
import { withRunLock } from './run-guard.js';
import { runTraining } from './training-loop.js';

/** Seeds of the held-out people (never drawn for training). */
const HELD_OUT = 700_000_000;

export interface TrainDensePoseArgs extends TrainingArgs {
  /** 'small' (default) or 'resnet50'. */
  config: keyof typeof DENSEPOSE_CONFIGS;
  /** Linear warm-up steps (default steps / 20, at most 100). */
  warmupSteps?: number;
  evalExamples: number;
}

const fmt = (m: DensePoseMetrics) =>
  `part mIoU ${m.meanIoU.toFixed(3)} (all-25 ${m.meanIoUAll.toFixed(3)}), pixel acc ${m.pixelAccuracy.toFixed(3)}, UV error ${m.uvError.toFixed(4)} on ${m.uvPixels} correct-part pixels`;

/**
 * Trains a DensePoseHead on synthetic people, then writes the checkpoint, metrics.json (part mIoU, pixel
 * accuracy, UV error on held-out people), samples.png (rows: image, true / predicted parula render, true /
 * predicted IUV render), truth.png and predicted.png (rows: parula, raw I, IUV), loss.svg and loss.csv.
 */
export async function trainDensePose(args: TrainDensePoseArgs): Promise<void> {
  await withRunLock(args.out, 'train-densepose', () => trainDensePoseLocked(args));
}

/** trainDensePose holding the lock of `out`; a non-finite loss stops the run, keeping the last good checkpoint (see run-guard.ts). */
async function trainDensePoseLocked(args: TrainDensePoseArgs): Promise<void> {
  await T.init();
  if (args.batch < 2)
    throw new Error(`train-densepose: --batch must be at least 2 (batch norm in training), got ${args.batch}`);
  if (args.steps < 1) throw new Error('train-densepose: --steps must be at least 1');
  if (args.height < DENSEPOSE_MIN_SIDE || args.width < DENSEPOSE_MIN_SIDE)
    throw new Error(
      `train-densepose: --size must be at least ${DENSEPOSE_MIN_SIDE}x${DENSEPOSE_MIN_SIDE}, got ${args.height}x${args.width}`,
    );
  const config = DENSEPOSE_CONFIGS[args.config];
  if (!config)
    throw new Error(
      `train-densepose: --config must be one of ${Object.keys(DENSEPOSE_CONFIGS).join(', ')}, got '${args.config}'`,
    );
  await mkdir(args.out, { recursive: true });
  const warmupSteps = args.warmupSteps ?? Math.min(100, Math.floor(args.steps / 20));
  const trainer = new DensePoseTrainer({ config, seed: args.seed, lr: args.lr, warmupSteps, totalSteps: args.steps });
  const base = args.seed * 7919;
  console.log(
    `train-densepose: ${args.steps} steps of ${args.batch} ${args.height}x${args.width} images, ${args.config} network, lr ${args.lr} (warm-up ${warmupSteps}, cosine to lr/100)`,
  );
  const { history } = await runTraining(args, {
    command: 'train-densepose',
    trainer,
    logEvery: Math.max(1, Math.min(10, Math.floor(args.steps / 10))),
    // Training people depend only on the step, so a resumed run sees the same data.
    step: () =>
      trainer.step(
        Array.from({ length: args.batch }, (_, i) =>
          syntheticDensePoseExample(base + trainer.stepCount * args.batch + i, args.height, args.width),
        ),
      ),
    read: async (losses) => {
      const [total, part, uv] = await losses.data();
      return { total: total!, part: part!, uv: uv!, lr: trainer.optimizer.lr };
    },
    progress: { fields: ['loss', 'I', 'UV'], show: (e) => ({ loss: e.total!, I: e.part!, UV: e.uv! }) },
    series: [
      ['total', 'total'],
      ['part (I)', 'part'],
      ['UV', 'uv'],
    ],
    checkpointExtra: () => ({ size: [args.height, args.width] }),
  });

  const held: DensePoseExample[] = Array.from({ length: args.evalExamples }, (_, i) =>
    syntheticDensePoseExample(HELD_OUT + i, args.height, args.width),
  );
  const { metrics, predictions } = await evaluateDensePose(trainer.model, held);
  const shown = held.slice(0, 8);
  const truth = shown.map((e) => renderDensePose({ width: e.width, height: e.height, parts: e.parts, u: e.u, v: e.v }));
  const predicted = predictions.slice(0, 8).map((p) => renderDensePose(p));
  const W = args.width;
  const H = args.height;
  await writePng(
    `${args.out}/samples.png`,
    tile(
      [
        shown.map((e) => e.image),
        truth.map((r) => r.parula.data),
        predicted.map((r) => r.parula.data),
        truth.map((r) => r.iuv.data),
        predicted.map((r) => r.iuv.data),
      ],
      W,
      H,
    ),
  );
  const renders = (rs: typeof truth) =>
    tile([rs.map((r) => r.parula.data), rs.map((r) => r.raw.data), rs.map((r) => r.iuv.data)], W, H);
  await writePng(`${args.out}/truth.png`, renders(truth));
  await writePng(`${args.out}/predicted.png`, renders(predicted));
  const iou = Object.fromEntries(
    metrics.iou.flatMap((v, c) => (Number.isNaN(v) ? [] : [[`${c}:${DENSEPOSE_PART_NAMES[c]}`, v]])),
  );
  await writeFile(
    `${args.out}/metrics.json`,
    `${JSON.stringify({ steps: trainer.stepCount, config: args.config, heldOut: args.evalExamples, size: [H, W], metrics: { ...metrics, iou }, history }, null, 2)}\n`,
  );
  const last = history.at(-1);
  if (last) console.log(`final loss ${last.total.toFixed(4)} (I ${last.part.toFixed(4)}, UV ${last.uv.toFixed(4)})`);
  console.log(`held-out synthetic people (${args.evalExamples}): ${fmt(metrics)}`);
  console.log(`wrote ${args.out}/checkpoint, metrics.json, samples.png, truth.png, predicted.png, loss.svg, loss.csv`);
}

/** The person's keypoints from an OpenPose JSON file (the first person's pose_keypoints_2d). */
function readKeypoints(path: string): [number, number, number][] {
  const json = JSON.parse(readFileSync(path, 'utf8')) as { people?: { pose_keypoints_2d?: number[] }[] };
  const flat = json.people?.[0]?.pose_keypoints_2d;
  if (!flat || flat.length % 3 !== 0 || flat.length === 0)
    throw new Error(`densepose: '${path}' has no people[0].pose_keypoints_2d (x, y, confidence triples)`);
  return Array.from({ length: flat.length / 3 }, (_, i) => [flat[3 * i]!, flat[3 * i + 1]!, flat[3 * i + 2]!]);
}

export interface DensePoseArgs {
  image: string;
  ckpt: string;
  out: string;
  /** Network input [H, W]; default: the checkpoint's training height, width from the image's (or box's) aspect. */
  size?: [number, number];
  /** OpenPose JSON: predict inside the person box of its first person (personCrop). */
  keypoints?: string;
}

/** DensePose of one image with a trained checkpoint: the parula, raw-I and IUV renders at the image's size. */
export async function densePose(args: DensePoseArgs): Promise<void> {
  await T.init();
  const { model, size } = await loadDensePose(args.ckpt);
  const img = readImage(args.image);
  const plane = img.width * img.height;
  const [trainH, trainW] = size ?? [128, 96];
  const box: CropBox | undefined = args.keypoints
    ? personCrop(readKeypoints(args.keypoints), { aspect: trainH / trainW })
    : undefined;
  const region = box ?? { x: 0, y: 0, width: img.width, height: img.height };
  // Keep the image's aspect at the training height; the network is fully convolutional.
  const inputSize: [number, number] = args.size ?? [
    trainH,
    Math.max(DENSEPOSE_MIN_SIDE, Math.round((region.width * trainH) / region.height)),
  ];
  const chw = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) chw[c * plane + i] = img.data[3 * i + c]! / 255;
  const x = T.tensor(chw, [3, img.height, img.width]);
  const iuv = await predictIuv(model, x, { inputSize, ...(box ? { box } : {}) });
  x.dispose();
  const r = renderDensePose(iuv);
  await mkdir(args.out, { recursive: true });
  await writePng(`${args.out}/densepose.png`, r.parula);
  await writePng(`${args.out}/densepose-raw.png`, r.raw);
  await writePng(`${args.out}/densepose-iuv.png`, r.iuv);
  const fg = iuv.parts.reduce((n, p) => n + (p > 0 ? 1 : 0), 0);
  console.log(
    `DensePose of ${img.width}x${img.height} at ${inputSize[0]}x${inputSize[1]}${box ? ` inside the person box ${box.width}x${box.height}+${box.x}+${box.y}` : ''}: ` +
      `${((100 * fg) / plane).toFixed(1)}% of the pixels on the body`,
  );
  console.log(
    `wrote ${args.out}/densepose.png (parula, VITON-HD), densepose-raw.png (I x 3, DressCode), densepose-iuv.png (I, U, V; pose transfer)`,
  );
}
