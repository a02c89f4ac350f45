import { mkdir, writeFile } from 'node:fs/promises';
import * as T from '@leffa-webgpu/core';
import { LIP_LABELS, SCHP_CONFIGS, colorizeLabels, parseHuman, schpPalette } from '@leffa-webgpu/models';
import { encodeLabelPng, readImage, tile, writePng } from '@leffa-webgpu/data';
import { type ParsingMetrics, evaluateParsing } from '../schp/metrics.js';
import { type ParsingExample, SchpTrainer, syntheticParsingExample } from '../schp/trainer.js';
import { loadSchp } from '@leffa-webgpu/pipelines';
import type { TrainingArgs } from './presets.js';
import { withRunLock } from './run-guard.js';
import { runTraining } from './training-loop.js';

/** Seeds of the held-out people (never drawn for training). */
const HELD_OUT = 900_000_000;

/** The SCHP configs train-schp trains (the ResNet-101 ones are for official weights). */
export const SCHP_TRAINABLE = ['small', 'small_stride2'] as const;

export interface TrainSchpArgs extends Omit<TrainingArgs, 'lr'> {
  /** Network config (default small). */
  config?: (typeof SCHP_TRAINABLE)[number];
  /** Self-correction rounds; the last one ends the run (0: plain training, no aggregation). */
  cycles: number;
  /** Steps per self-correction cycle (default steps / 10). */
  cycleSteps?: number;
  lr?: number;
  optimizer: 'sgd' | 'adamw';
  /** Strength of the label noise put on the training labels (0..1); held-out labels stay clean. */
  labelNoise: number;
  evalExamples: number;
  /** Held-out mIoU of the model in use (the aggregate once a round ran) every this many steps (0: at the end only). */
  evalEvery?: number;
  /** Batches of training images for each BN re-estimation. */
  bnBatches: number;
}

/** Where cycle 0 ends so that `cycles` rounds of `cycleSteps` finish exactly at `steps`. */
export function schpCyclePlan(
  steps: number,
  cycles: number,
  cycleSteps?: number,
): { cycleStart: number; cycleSteps: number; warmupSteps: number } {
  const len = cycleSteps ?? Math.max(1, Math.floor(steps / 10));
  const cycleStart = cycles > 0 ? steps - (cycles - 1) * len : steps;
  const warmupSteps = Math.floor(cycleStart / 10);
  if (!(cycleStart > warmupSteps && cycleStart >= 1)) {
    throw new Error(
      `train-schp: --steps ${steps} is too short for --cycles ${cycles} of --cycle-steps ${len}: cycle 0 would end at step ${cycleStart}; ` +
        `give more steps, fewer cycles or shorter cycles (steps > (cycles - 1) x cycle-steps)`,
    );
  }
  return { cycleStart, cycleSteps: len, warmupSteps };
}

const fmt = (m: ParsingMetrics) =>
  `mIoU ${m.meanIoU.toFixed(3)} (all-20 ${m.meanIoUAll.toFixed(3)}), pixel acc ${m.pixelAccuracy.toFixed(3)}`;

/**
 * Trains the small SCHP network on synthetic people with self-correction (optionally on noisy labels), then
 * writes the checkpoint, metrics.json (mIoU / pixel accuracy on held-out people, network and aggregate),
 * samples.png (rows: image, truth, prediction), loss.svg and loss.csv.
 */
export async function trainSchp(args: TrainSchpArgs): Promise<void> {
  await withRunLock(args.out, 'train-schp', () => trainSchpLocked(args));
}

/** trainSchp holding the lock of `out`; a non-finite loss stops the run, keeping the last good checkpoint (see run-guard.ts). */
async function trainSchpLocked(args: TrainSchpArgs): Promise<void> {
  await T.init();
  if (args.batch < 2)
    throw new Error(`train-schp: --batch must be at least 2 (batch norm in training), got ${args.batch}`);
  if (!(args.labelNoise >= 0 && args.labelNoise <= 1))
    throw new Error(`train-schp: --label-noise must be in [0, 1], got ${args.labelNoise}`);
  if (args.steps < 1) throw new Error('train-schp: --steps must be at least 1');
  await mkdir(args.out, { recursive: true });
  const plan = schpCyclePlan(args.steps, args.cycles, args.cycleSteps);
  const trainer = new SchpTrainer({
    config: SCHP_CONFIGS[args.config ?? 'small'],
    seed: args.seed,
    optimizer: args.optimizer,
    ...(args.lr !== undefined ? { lr: args.lr } : {}),
    ...plan,
    maxRounds: args.cycles,
  });
  let curve: { step: number; rounds: number; meanIoU: number }[] = [];
  const held: ParsingExample[] = Array.from({ length: args.evalExamples }, (_, i) =>
    syntheticParsingExample(HELD_OUT + i, args.height, args.width),
  );
  const example = (seed: number) => syntheticParsingExample(seed, args.height, args.width, args.labelNoise);
  const base = args.seed * 7919;
  // BN re-estimation images: the first training images (only the images matter, not their labels).
  const bnBatches = () =>
    Array.from({ length: Math.max(1, args.bnBatches) }, (_, j) =>
      Array.from({ length: args.batch }, (_, i) =>
        syntheticParsingExample(base + j * args.batch + i, args.height, args.width),
      ),
    );
  console.log(
    `train-schp: ${args.steps} steps of ${args.batch} ${args.height}x${args.width} images, cycle 0 until step ${plan.cycleStart} ` +
      `(warm-up ${plan.warmupSteps}), then ${args.cycles > 0 ? `${args.cycles - 1} more cycles of ${plan.cycleSteps}` : 'no self-correction'}; label noise ${args.labelNoise}`,
  );
  const { history } = await runTraining(args, {
    command: 'train-schp',
    trainer,
    onResume: (extra) => {
      curve = (extra.curve as typeof curve | undefined) ?? [];
      console.log(`train-schp: ${trainer.rounds} self-correction rounds done`);
    },
    logEvery: Math.max(1, Math.min(10, Math.floor(args.steps / 10))),
    // Training people depend only on the step, so a resumed run sees the same data.
    step: () =>
      trainer.step(Array.from({ length: args.batch }, (_, i) => example(base + trainer.stepCount * args.batch + i))),
    read: async (losses) => {
      const [total, parsing, edge, consistency] = await losses.data();
      return { total: total!, parsing: parsing!, edge: edge!, consistency: consistency!, lr: trainer.optimizer.lr };
    },
    progress: {
      fields: ['loss', 'parse', 'edge', 'cons', 'round'],
      show: (e) => ({ loss: e.total!, parse: e.parsing!, edge: e.edge!, cons: e.consistency!, round: trainer.rounds }),
    },
    series: [
      ['total', 'total'],
      ['parsing', 'parsing'],
      ['edge', 'edge'],
      ['consistency', 'consistency'],
    ],
    checkpointExtra: () => ({ curve, size: [args.height, args.width], labelNoise: args.labelNoise }),
    afterStep: async () => {
      let corrected = false;
      while (trainer.correctionDue) {
        trainer.selfCorrect(bnBatches());
        corrected = true;
        console.log(
          `self-correction round ${trainer.rounds} at step ${trainer.stepCount}: weights aggregated (1/${trainer.rounds}), BN re-estimated`,
        );
      }
      if (args.evalEvery && trainer.stepCount % args.evalEvery === 0 && trainer.stepCount < args.steps) {
        const { metrics } = await evaluateParsing(trainer.best, held);
        curve.push({ step: trainer.stepCount, rounds: trainer.rounds, meanIoU: metrics.meanIoU });
        console.log(
          `step ${trainer.stepCount}: held-out mIoU ${metrics.meanIoU.toFixed(4)} (${trainer.rounds >= 1 ? 'SCHP aggregate' : 'network'})`,
        );
      }
      // A checkpoint after every round, so a resume never repeats one.
      return corrected;
    },
  });

  const network = await evaluateParsing(trainer.model, held);
  const aggregate = trainer.rounds >= 1 ? await evaluateParsing(trainer.schp, held) : null;
  const best = aggregate ?? network;
  const shown = held.slice(0, 8);
  await writePng(
    `${args.out}/samples.png`,
    tile(
      [
        shown.map((e) => e.image),
        shown.map((e) => colorizeLabels(e.labels)),
        best.predictions.slice(0, 8).map((p) => colorizeLabels(p)),
      ],
      args.width,
      args.height,
    ),
  );
  const classes = (m: ParsingMetrics) =>
    Object.fromEntries(m.iou.flatMap((v, c) => (Number.isNaN(v) ? [] : [[LIP_LABELS.labels[c]!, v]])));
  await writeFile(
    `${args.out}/metrics.json`,
    `${JSON.stringify(
      {
        steps: trainer.stepCount,
        rounds: trainer.rounds,
        labelNoise: args.labelNoise,
        heldOut: args.evalExamples,
        size: [args.height, args.width],
        network: { ...network.metrics, iou: classes(network.metrics) },
        aggregate: aggregate ? { ...aggregate.metrics, iou: classes(aggregate.metrics) } : null,
        curve,
        history,
      },
      null,
      2,
    )}\n`,
  );
  const last = history.at(-1);
  if (last)
    console.log(
      `final loss ${last.total.toFixed(4)} (parsing ${last.parsing.toFixed(4)}, edge ${last.edge.toFixed(4)}, consistency ${last.consistency.toFixed(4)})`,
    );
  console.log(`held-out synthetic people (${args.evalExamples}), network: ${fmt(network.metrics)}`);
  if (aggregate)
    console.log(
      `held-out synthetic people (${args.evalExamples}), SCHP aggregate after ${trainer.rounds} rounds: ${fmt(aggregate.metrics)}`,
    );
  console.log(
    `mIoU: ${best.metrics.meanIoU.toFixed(4)}; wrote ${args.out}/checkpoint, metrics.json, samples.png, loss.svg, loss.csv`,
  );
}

export interface ParseArgs {
  image: string;
  ckpt: string;
  out: string;
  /** Network input [H, W]; default the checkpoint's training size. */
  size?: [number, number];
  flip: boolean;
  /** 'auto': the aggregated model when the checkpoint has one (a round ran), else the trained network. */
  weights: 'auto' | 'network' | 'aggregate';
}

/** Human parsing of one image: the palette label PNG (index = LIP label) and one mask PNG per class found. */
export async function parse(args: ParseArgs): Promise<void> {
  await T.init();
  // A train-schp checkpoint folder or an official SCHP .pth (config and input size from its class count).
  const { model, aggregate: useAggregate, inputSize: trained } = await loadSchp(args.ckpt, args.weights);
  const config = model.config;
  const inputSize = args.size ?? trained;
  if (!inputSize) throw new Error(`parse: '${args.ckpt}' does not record its training size; pass --size HxW`);
  const img = readImage(args.image);
  const plane = img.width * img.height;
  const chw = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) chw[c * plane + i] = img.data[3 * i + c]! / 255;
  const x = T.tensor(chw, [3, img.height, img.width]);
  const result = parseHuman(model, x, { inputSize, flip: args.flip });
  const labels = Uint8Array.from(await result.labels.intData());
  T.dispose([x, result.logits, result.labels]);
  await mkdir(`${args.out}/masks`, { recursive: true });
  const C = config.numClasses;
  await writeFile(
    `${args.out}/parsing.png`,
    encodeLabelPng({ width: img.width, height: img.height, labels }, schpPalette(C)),
  );
  const names = C === LIP_LABELS.labels.length ? LIP_LABELS.labels : Array.from({ length: C }, (_, c) => `class${c}`);
  const counts = new Array<number>(C).fill(0);
  for (const l of labels) counts[l]!++;
  const found: string[] = [];
  for (let c = 0; c < C; c++) {
    if (!counts[c]) continue;
    const mask = Uint8Array.from(labels, (l) => (l === c ? 255 : 0));
    await writePng(`${args.out}/masks/${String(c).padStart(2, '0')}-${names[c]}.png`, {
      width: img.width,
      height: img.height,
      data: mask,
    });
    found.push(`${names[c]} ${((100 * counts[c]!) / plane).toFixed(1)}%`);
  }
  console.log(
    `parsed ${img.width}x${img.height} with the ${useAggregate ? 'aggregated SCHP' : 'trained'} network at ${inputSize[0]}x${inputSize[1]}${args.flip ? ' (flip test)' : ''}: ${found.join(', ')}`,
  );
  console.log(
    `wrote ${args.out}/parsing.png (palette PNG, pixel index = LIP label) and ${found.length} masks in ${args.out}/masks/`,
  );
}
