/**
 * The loop every training command runs: resume, progress, the loss read back and checked every few steps,
 * periodic checkpoints, the loss curve and the run guard (see run-guard.ts). It takes the shared training
 * options (`--out`, `--steps`, `--save-every`, `--resume`); a command supplies its trainer, one step (its batch
 * source and the trainer's step), how to read a step's losses, and what the curve shows; its final evaluation
 * runs after `runTraining` returns. The checkpoint goes to `<out>/checkpoint`, the curve to `<out>/loss.svg`
 * and `loss.csv`.
 */
import * as T from '@leffa-webgpu/core';
import type { Trainer } from '../trainer.js';
import type { TrainingArgs } from './presets.js';
import { type LossCurve, loggedSteps, writeLossCurve } from './loss-curve.js';
import { Progress } from './progress.js';
import { RunGuard } from './run-guard.js';

/** One logged step: its number and the values read back (loss terms, learning rate). */
export type LogEntry = { step: number } & Record<string, number>;

export interface TrainingRun<Losses> {
  /** The command ('train-vae'): names the run in the guard's messages. */
  command: string;
  /** The progress bar's and the curve's title (default: the command). */
  title?: string;
  trainer: Trainer;
  /** Read back, check and record the losses every this many steps (and at the last step unless `logLast` is false). */
  logEvery: number;
  logLast?: boolean;
  /** One optimisation step, batch included. */
  step(): Losses;
  /** A step's values to log, all checked by the guard: the losses read back, and anything else to record (the learning rate). */
  read(losses: Losses): Promise<Record<string, number>>;
  /** The progress bar's fields and what it shows of a logged entry (default: every value under its own name). */
  progress?: { fields: string[]; show(entry: LogEntry): Record<string, number | string> };
  /** The curve's series: [series name, entry key]. */
  series: readonly (readonly [string, string])[];
  /** What the checkpoint records besides the history (task, size, ...). */
  checkpointExtra?: () => Record<string, unknown>;
  /** Runs after every step (self-correction, evaluations, samples); true asks for a checkpoint now. */
  afterStep?: () => Promise<boolean | undefined> | boolean | undefined;
  /** Called with the resumed checkpoint's extra JSON (after the trainer has loaded it). */
  onResume?: (extra: Record<string, unknown>) => void;
  /** Names the values of a history saved as bare numbers (one per 10 steps), as train-vae and train-openpose once did. */
  legacyName?: string;
}

export interface TrainingResult {
  /** Every logged step, the resumed checkpoint's first. */
  history: LogEntry[];
}

/**
 * A resumed checkpoint's history. Older train-vae and train-openpose checkpoints hold bare numbers, one per 10
 * steps (train-vae also logged its last step: then there is one more value than whole tens).
 */
export function historyOf(saved: unknown, step: number, legacyName?: string, where = 'historyOf'): LogEntry[] {
  if (!Array.isArray(saved)) return [];
  if (!saved.every((v) => typeof v === 'number')) return saved as LogEntry[];
  if (!legacyName)
    throw new Error(
      `${where}: the checkpoint's history (state.json extra.history) holds bare numbers; this command logs named values`,
    );
  const steps = loggedSteps(saved.length, 10, saved.length > Math.floor(step / 10) ? step : undefined);
  return saved.map((v, i) => ({ step: steps[i]!, [legacyName]: v as number }) as LogEntry);
}

/**
 * Runs the training loop (see the module comment) to `steps`, with a checkpoint every `saveEvery` steps, from
 * the checkpoint `resume` (loaded into the trainer, its history continued) when given. The caller holds the
 * run folder's lock.
 */
export async function runTraining<Losses>(
  args: Pick<TrainingArgs, 'out' | 'steps' | 'saveEvery' | 'resume' | 'cli'>,
  run: TrainingRun<Losses>,
): Promise<TrainingResult> {
  const { trainer } = run;
  const title = run.title ?? run.command;
  let history: LogEntry[] = [];
  if (args.resume) {
    const extra = await trainer.load(args.resume);
    history = historyOf(extra.history, trainer.stepCount, run.legacyName, `${run.command}: '${args.resume}'`);
    run.onResume?.(extra);
    console.log(`${run.command}: resumed at step ${trainer.stepCount} from ${args.resume}`);
  }
  const guard = new RunGuard(run.command, args.resume ? { step: trainer.stepCount, where: args.resume } : undefined);
  const ckpt = `${args.out}/checkpoint`;
  const curve = (): LossCurve => ({
    title,
    steps: history.map((h) => h.step),
    series: run.series.map(([name, key]) => ({ name, values: history.map((h) => h[key] ?? Number.NaN) })),
  });
  const save = async () => {
    await guard.save(trainer.stepCount, ckpt, () =>
      trainer.save(ckpt, { history, ...(args.cli ? { cli: args.cli } : {}), ...run.checkpointExtra?.() }),
    );
    await writeLossCurve(args.out, curve());
  };
  const fields = run.progress?.fields ?? run.series.map(([, key]) => key);
  const progress = new Progress(title, args.steps, fields, trainer.stepCount);
  try {
    while (trainer.stepCount < args.steps) {
      const losses = run.step();
      const step = trainer.stepCount;
      if (step % run.logEvery === 0 || (run.logLast !== false && step === args.steps)) {
        const values = await run.read(losses);
        guard.check(step, values);
        const entry = { step, ...values } as LogEntry;
        history.push(entry);
        progress.update(step, run.progress ? run.progress.show(entry) : values);
      } else progress.update(step);
      T.dispose(losses);
      await T.throttle();
      const asked = await run.afterStep?.();
      if (asked === true || (step % args.saveEvery === 0 && step < args.steps)) await save();
    }
  } finally {
    progress.stop();
  }
  await save();
  return { history };
}
