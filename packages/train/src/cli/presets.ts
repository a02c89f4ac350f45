/**
 * The options several commands share, each declared once here: commands add them with `addOption(preset(...))`
 * and only choose the default and, where it differs, the help text. Values arrive parsed and checked
 * (`--size` as [height, width]).
 */
import { basename, dirname, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import * as T from '@leffa-webgpu/core';
import { intOption, listOption, numberOption } from './options.js';

export const int = intOption(0);
export const count = intOption(1);
export const lrValue = numberOption({ above: 0 });
export const weight = numberOption({ min: 0 });

/** A VAE scaling factor: a positive number, or 'unit' (measured from the data). */
export const scalingFactor = (v: string): number | 'unit' => {
  if (v === 'unit') return 'unit';
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`--scaling-factor expects a positive number or 'unit', got '${v}'`);
  return n;
};

/** HxW with positive integers, as [height, width]. */
export const parseSize =
  (option = '--size') =>
  (v: string): [number, number] => {
    const m = /^(\d+)x(\d+)$/.exec(v);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
      throw new InvalidArgumentError(`${option} expects HxW with positive integers (e.g. 128x96), got '${v}'`);
    return [Number(m[1]), Number(m[2])];
  };

const withDefault = (o: Option, value: unknown, shown?: string) => (value === undefined ? o : o.default(value, shown));

export const outOption = (dflt: string | undefined, description = 'output folder', flags = '--out <dir>') =>
  withDefault(new Option(flags, description), dflt);
export const stepsOption = (dflt: number, description = 'training steps') =>
  new Option('--steps <n>', description).argParser(count).default(dflt);
export const batchOption = (dflt: number, description = 'images per step') =>
  new Option('--batch <n>', description).argParser(count).default(dflt);
/** `--size HxW`; without a default the option is absent unless given. */
export const sizeOption = (dflt: string | undefined, description = 'image size') =>
  withDefault(
    new Option('--size <HxW>', description).argParser(parseSize()),
    dflt === undefined ? undefined : parseSize()(dflt),
    dflt,
  );
export const lrOption = (dflt: number | undefined, description = 'learning rate') =>
  withDefault(new Option('--lr <lr>', description).argParser(lrValue), dflt);
export const seedOption = (description = 'seed') => new Option('--seed <n>', description).argParser(int).default(0);
export const resumeOption = (description = 'resume from a checkpoint') => new Option('--resume <dir>', description);
export const saveEveryOption = (dflt: number, description = 'checkpoint interval') =>
  new Option('--save-every <n>', description).argParser(count).default(dflt);
export const evalExamplesOption = (dflt: number, description: string) =>
  new Option('--eval-examples <n>', description).argParser(count).default(dflt);
/** --task, tryon by default; `defaultTask` null leaves it unset for a command that finds it elsewhere. */
export const taskOption = (description = 'tryon or pose', defaultTask: 'tryon' | null = 'tryon') => {
  const option = new Option('--task <task>', description).choices(['tryon', 'pose']);
  return defaultTask ? option.default(defaultTask) : option;
};
export const seedsOption = (description: string) =>
  new Option('--seeds <list>', description).argParser(listOption(intOption(0))).default([0, 1, 2], '0,1,2');
export const guidanceOption = () =>
  new Option('--guidance <s>', 'classifier-free guidance scale').argParser(weight).default(2.5);

/** The Leffa loss: --leffa-weight, --leffa-distance, --leffa-normalization. */
export const leffaWeightOption = (description: string) =>
  new Option('--leffa-weight <w>', description).argParser(weight).default(1e-3);
export const leffaDistanceOption = () =>
  new Option('--leffa-distance <d>', "Leffa loss distance: smoothL1 (Leffa's released code) or l2")
    .choices(['smoothL1', 'l2'])
    .default('smoothL1');
export const leffaNormalizationOption = () =>
  new Option(
    '--leffa-normalization <n>',
    'Leffa loss averaging: released (per-sample mean over C x H x W, then the batch) or maskArea (over the masked pixels)',
  )
    .choices(['released', 'maskArea'])
    .default('released');
/** A fixed pool of n training examples, or 'fresh' (0): every step draws new ones from the generator. */
export const poolOption = (description: string, dflt: number | 'fresh' = 256) =>
  new Option('--pool <n>', description)
    .argParser((v: string) => (v === 'fresh' ? 0 : count(v)))
    .default(dflt === 'fresh' ? 0 : dflt, String(dflt));
/** Learning-rate schedule: constant, or warm-up then cosine decay to --min-lr at --steps. */
export const lrScheduleOption = () =>
  new Option('--lr-schedule <kind>', 'learning-rate schedule over --steps')
    .choices(['constant', 'cosine'])
    .default('constant');
export const warmupStepsOption = () =>
  new Option('--warmup-steps <n>', 'linear learning-rate warm-up steps').argParser(int).default(0);
/** The schedule those options describe, over a run of `steps`. */
export function lrScheduleFrom(o: {
  lr: number;
  steps: number;
  lrSchedule?: 'constant' | 'cosine';
  warmupSteps?: number;
  minLr?: number;
}): T.optim.LRSchedule {
  return o.lrSchedule === 'cosine'
    ? T.optim.warmupCosineLR({
        baseLr: o.lr,
        warmupSteps: o.warmupSteps ?? 0,
        totalSteps: o.steps,
        minLr: o.minLr ?? 0,
      })
    : T.optim.constantLR(o.lr, { warmupSteps: o.warmupSteps ?? 0 });
}
export const minLrOption = () =>
  new Option('--min-lr <lr>', 'final learning rate of the cosine schedule').argParser(weight).default(0);
export const examplesOption = (dflt: number, description: string) =>
  new Option('--examples <n>', description).argParser(count).default(dflt);
export const imageOption = (flags = '--image <png|jpg>') => new Option(flags, 'input image').makeOptionMandatory();
export const vaeOption = (description: string) => new Option('--vae <dir>', description);
export const initOption = (description: string) => new Option('--init <dir>', description);
/** The photo pipeline's preprocessing networks (tryon, pose-transfer). */
export const openPoseCkptOption = (dflt: string) =>
  new Option('--openpose <dir|file>', 'OpenPose checkpoint for photos, or the official body_pose_model.pth').default(
    dflt,
  );
export const densePoseCkptOption = (dflt: string) =>
  new Option('--densepose-ckpt <dir>', 'DensePose checkpoint for photos (from train-densepose)').default(dflt);

/** A training command's defaults for the options every training command takes (help texts where they differ). */
export interface TrainingDefaults {
  out: string;
  steps: number;
  batch: number;
  batchHelp?: string;
  size: string;
  /** undefined: no default (the command picks one from its other options). */
  lr: number | undefined;
  lrHelp?: string;
  saveEvery: number;
  saveEveryHelp?: string;
  resumeHelp?: string;
  /** Also --lr-schedule, --warmup-steps and --min-lr (lrScheduleFrom). */
  schedule?: boolean;
}

/** Where a run writes and what it resumes: not recorded, the command line says. */
const RUN_LOCATION = new Set(['out', 'resume']);
/**
 * How long a run lasts and how often it saves: recorded, so a resume left without them ends where the run was meant
 * to (a cosine schedule spans --steps), but a resume may extend the run.
 */
const RUN_EXTENT = new Set(['steps', 'saveEvery']);

/**
 * With --resume, the run's own options (recorded in its checkpoint, state.json extra.cli) stand in for every
 * option left out, so `--resume <dir>` alone continues the run as it was started, to the step it was meant to end
 * at, writing beside its checkpoint; one given that contradicts the record is refused rather than silently changing
 * the run, except --steps and --save-every, which may extend it. Checkpoints without a record keep the command line
 * as given.
 */
async function restoreRecordedOptions(command: Command): Promise<void> {
  const resume = command.getOptionValue('resume') as string | undefined;
  if (resume === undefined) return;
  // A run's checkpoint is `<out>/checkpoint`: resumed from there, the run goes on writing beside it. Any other folder
  // (an export, a copy) says nothing about where the run lives, so --out keeps its default there.
  const source = command.getOptionValueSource('out');
  if (source !== 'cli' && source !== 'env' && basename(resolve(resume)) === 'checkpoint')
    command.setOptionValueWithSource('out', dirname(resolve(resume)), 'config');
  // The checkpoint reader the resume itself uses, so a folder whose last save was interrupted is read from the
  // same complete copy (`<dir>.previous`) the run will continue from.
  let extra: { cli?: unknown } | null;
  try {
    extra = (await T.openCheckpoint(resume)).extra as { cli?: unknown } | null;
  } catch {
    return; // not a checkpoint: the loader says so with the path when the run starts
  }
  const recorded = extra?.cli as Record<string, unknown> | undefined;
  if (recorded === undefined || typeof recorded !== 'object' || recorded === null) return;
  for (const option of command.options) {
    const key = option.attributeName();
    if (RUN_LOCATION.has(key) || !(key in recorded)) continue;
    const value = recorded[key];
    const source = command.getOptionValueSource(key);
    if (source === 'cli' || source === 'env') {
      if (RUN_EXTENT.has(key)) continue;
      const given = command.getOptionValue(key);
      if (JSON.stringify(given) !== JSON.stringify(value))
        throw new Error(
          `${command.name()}: ${option.long} ${JSON.stringify(given)} contradicts the resumed run's ${JSON.stringify(value)} (${resume}); --resume continues a run with its own settings, --init starts a new one from its weights`,
        );
    } else command.setOptionValueWithSource(key, value, 'config');
  }
}

/** Adds the options every training command shares: --out, --steps, --batch, --size, --lr, --seed, --save-every, --resume. */
export function addTrainingOptions(command: Command, d: TrainingDefaults): Command {
  command.hook('preAction', (cmd) => restoreRecordedOptions(cmd));
  command
    .addOption(outOption(d.out))
    .addOption(stepsOption(d.steps))
    .addOption(batchOption(d.batch, d.batchHelp))
    .addOption(sizeOption(d.size))
    .addOption(lrOption(d.lr, d.lrHelp));
  if (d.schedule) command.addOption(lrScheduleOption()).addOption(warmupStepsOption()).addOption(minLrOption());
  return command
    .addOption(seedOption())
    .addOption(saveEveryOption(d.saveEvery, d.saveEveryHelp))
    .addOption(resumeOption(d.resumeHelp ?? 'resume a run bit-for-bit from its checkpoint'));
}

/** The values of the shared training options, as the train* functions take them. */
export interface TrainingArgs {
  out: string;
  steps: number;
  batch: number;
  height: number;
  width: number;
  lr: number;
  seed: number;
  saveEvery: number;
  resume?: string;
  lrSchedule?: 'constant' | 'cosine';
  warmupSteps?: number;
  minLr?: number;
  /** The command's parsed options, recorded in each checkpoint (state.json extra.cli) for --resume. */
  cli?: Record<string, unknown>;
}

/** The shared options' values from a command's parsed options (`--size` split into height and width). */
export function trainingArgs(o: Record<string, unknown>): TrainingArgs {
  const [height, width] = o.size as [number, number];
  const args: TrainingArgs = {
    out: o.out as string,
    steps: o.steps as number,
    batch: o.batch as number,
    height,
    width,
    lr: o.lr as number,
    seed: o.seed as number,
    saveEvery: o.saveEvery as number,
    cli: Object.fromEntries(Object.entries(o).filter(([k]) => !RUN_LOCATION.has(k))),
  };
  if (o.resume !== undefined) args.resume = o.resume as string;
  if (o.lrSchedule !== undefined) args.lrSchedule = o.lrSchedule as 'constant' | 'cosine';
  if (o.warmupSteps !== undefined) args.warmupSteps = o.warmupSteps as number;
  if (o.minLr !== undefined) args.minLr = o.minLr as number;
  return args;
}
