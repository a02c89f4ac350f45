// The one trainer shape (TrainerBase: save, load, random state) and the one training loop (runTraining).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { DENSEPOSE_CONFIGS } from '@leffa-webgpu/models';
import { syntheticPoseExample } from '@leffa-webgpu/data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DensePoseTrainer,
  OpenPoseTrainer,
  type RandomState,
  SchpTrainer,
  type Trainer,
  syntheticDensePoseExample,
  syntheticParsingExample,
  withGenerator,
} from '../src/index.js';
import { historyOf, runTraining } from '../src/cli/training-loop.js';

const tmp = mkdtempSync(join(tmpdir(), 'trainer-shape-'));
beforeAll(async () => {
  await T.init();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const values = async (t: T.Tensor) => {
  const v = [...(await t.data())];
  t.dispose();
  return v;
};
const stateOf = (dir: string) =>
  JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { extra: Record<string, unknown> };
const rewriteExtra = (dir: string, edit: (extra: Record<string, unknown>) => void) => {
  const state = stateOf(dir);
  edit(state.extra);
  writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
};

describe('withGenerator', () => {
  it('lends the generator to code that draws from the global one, which is left as it was', async () => {
    T.manualSeed(11);
    const before = T.defaultGenerator.getState();
    const mine = new T.Generator(5);
    const lent = await values(withGenerator(mine, () => T.rand([7])));
    expect(T.defaultGenerator.getState()).toEqual(before);
    // The same draw straight from a generator in the same state; the lent one advanced past it.
    const direct = new T.Generator(5);
    expect(lent).toEqual(await values(T.rand([7], { generator: direct })));
    expect(mine.getState()).toEqual(direct.getState());
    expect(mine.getState().offset).toBeGreaterThan(0);
    // Put back even when the body throws.
    expect(() =>
      withGenerator(mine, () => {
        T.rand([3]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(T.defaultGenerator.getState()).toEqual(before);
  });
});

describe('SCHP and DensePose trainers draw from their own generator', () => {
  const H = 32;
  const W = 32;
  const batch = [0, 1].map((s) => syntheticDensePoseExample(300 + s, H, W));
  const parsing = [0, 1].map((s) => syntheticParsingExample(300 + s, H, W));

  it('the same seed gives the same weights and losses whatever the global generator did, and leaves it alone', async () => {
    const run = async (globalSeed: number) => {
      T.manualSeed(globalSeed);
      T.rand([5]).dispose();
      const global = T.defaultGenerator.getState();
      const schp = new SchpTrainer({ seed: 3, optimizer: 'adamw', cycleStart: 10, cycleSteps: 2, warmupSteps: 0 });
      const densepose = new DensePoseTrainer({ seed: 3 });
      const losses = [await values(schp.step(parsing)), await values(densepose.step(batch))];
      // SCHP's head has dropout: its draws moved the trainer's stream, not the global one.
      expect(T.defaultGenerator.getState()).toEqual(global);
      expect(schp.generator.getState().offset).toBeGreaterThan(0);
      return losses;
    };
    expect(await run(1)).toEqual(await run(2));
  });

  it('random state is saved and restored; a checkpoint without it is refused, one of the global generator era resumes', async () => {
    const a = new DensePoseTrainer({ seed: 4, config: DENSEPOSE_CONFIGS.small });
    (await a.step(batch)).dispose();
    const dir = join(tmp, 'densepose');
    await a.save(dir, { note: 1 });
    const saved = stateOf(dir).extra;
    expect(saved).toMatchObject({
      note: 1,
      kind: 'densepose',
      step: 1,
      generator: a.generator.getState(),
      rng: a.rng.getState(),
    });
    expect(a.randomState()).toEqual({ generator: saved.generator, rng: saved.rng });
    const next = await values(a.step(batch));

    // A checkpoint written when DensePose drew from the global generator recorded that generator's state under
    // the same key: it resumes into the trainer's own.
    const b = new DensePoseTrainer({ seed: 99 });
    await b.load(dir);
    expect([b.stepCount, b.randomState()]).toEqual([1, { generator: saved.generator, rng: saved.rng }]);
    expect(await values(b.step(batch))).toEqual(next);

    rewriteExtra(dir, (extra) => delete extra.generator);
    await expect(new DensePoseTrainer({ seed: 99 }).load(dir)).rejects.toThrow(
      /DensePoseTrainer\.load: '.*densepose' holds no generator state \(state\.json extra\.generator \{ seed, offset \}\), so it cannot resume bit-for-bit/,
    );
    rewriteExtra(dir, (extra) => (extra.kind = 'schp'));
    await expect(new DensePoseTrainer({ seed: 99 }).load(dir)).rejects.toThrow(
      /is not a densepose training checkpoint \(state\.json extra\.kind is not 'densepose'\)/,
    );
    expect(() => b.setRandomState({ rng: 1 })).toThrow(/DensePoseTrainer\.setRandomState: needs the generator state/);
  });

  it('OpenPose: no generator, its rng and step restored, its config recorded', async () => {
    const pose = [0, 1].map((s) => syntheticPoseExample(s, 64, 48));
    const a = new OpenPoseTrainer({ seed: 2, lr: 1e-3 });
    (await a.step(pose)).dispose();
    const dir = join(tmp, 'openpose');
    await a.save(dir);
    const extra = stateOf(dir).extra;
    expect(extra).toMatchObject({ kind: 'openpose', step: 1, rng: a.rng.getState(), config: a.model.config });
    expect(extra.generator).toBeUndefined();
    const next = await values(a.step(pose));
    const b = new OpenPoseTrainer({ seed: 7, lr: 1e-3 });
    await b.load(dir);
    expect(b.randomState()).toEqual({ rng: extra.rng });
    expect(await values(b.step(pose))).toEqual(next);
  });
});

/** A trainer on the CPU: its loss is 1 / (step + 1), NaN from `nanAt` on; saves are recorded. */
class Counting implements Trainer {
  stepCount = 0;
  saves: { step: number; extra: Record<string, unknown> }[] = [];
  constructor(readonly nanAt = Infinity) {}
  step(): number {
    this.stepCount++;
    return this.stepCount >= this.nanAt ? Number.NaN : 1 / this.stepCount;
  }
  async save(_dir: string, extra: Record<string, unknown> = {}): Promise<void> {
    this.saves.push({ step: this.stepCount, extra: structuredClone(extra) });
  }
  async load(): Promise<Record<string, unknown>> {
    const last = this.saves.at(-1)!;
    this.stepCount = last.step;
    return { ...last.extra, step: last.step };
  }
  randomState(): RandomState {
    return {};
  }
  setRandomState(): void {}
}

describe('runTraining', () => {
  const spec = (trainer: Counting, more: Partial<Parameters<typeof runTraining<number>>[1]> = {}) => ({
    command: 'train-test',
    trainer,
    logEvery: 3,
    step: () => trainer.step(),
    read: async (loss: number) => ({ loss }),
    series: [['loss', 'loss']] as const,
    checkpointExtra: () => ({ size: [8, 8] }),
    ...more,
  });

  it('logs every n steps and the last, saves every n steps and at the end, writes the curve, continues it on resume', async () => {
    const out = join(tmp, 'loop');
    const trainer = new Counting();
    const after: number[] = [];
    const afterStep = () => {
      after.push(trainer.stepCount);
      return trainer.stepCount === 5;
    };
    const { history } = await runTraining({ out, steps: 7, saveEvery: 4 }, spec(trainer, { afterStep }));
    expect(history).toEqual([
      { step: 3, loss: 1 / 3 },
      { step: 6, loss: 1 / 6 },
      { step: 7, loss: 1 / 7 },
    ]);
    expect(after).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // Step 4 (every 4), step 5 (asked for by afterStep), step 7 (the end).
    expect(trainer.saves.map((s) => s.step)).toEqual([4, 5, 7]);
    expect(trainer.saves.at(-1)!.extra).toEqual({ history, size: [8, 8] });
    expect(readFileSync(join(out, 'loss.csv'), 'utf8')).toBe(`step,loss\n3,${1 / 3}\n6,${1 / 6}\n7,${1 / 7}\n`);

    const resumed = await runTraining(
      { out, steps: 10, saveEvery: 4, resume: 'the last save' },
      spec(trainer, { logLast: false }),
    );
    expect(resumed.history.map((h) => h.step)).toEqual([3, 6, 7, 9]);
    expect(trainer.stepCount).toBe(10);
  });

  it('a non-finite loss stops the run before its next save', async () => {
    const trainer = new Counting(5);
    await expect(runTraining({ out: join(tmp, 'nan'), steps: 7, saveEvery: 4 }, spec(trainer))).rejects.toThrow(
      /train-test: the loss turned non-finite at step 6 \(loss NaN\); stopped without saving\. The last good checkpoint, from step 4, is kept at .*nan\/checkpoint/,
    );
    expect(trainer.saves.map((s) => s.step)).toEqual([4]);
    expect(existsSync(join(tmp, 'nan', 'loss.csv'))).toBe(true);
  });

  it('older checkpoints: a history of bare numbers (one per 10 steps) becomes named entries', () => {
    expect(historyOf([0.5, 0.4], 20, 'loss')).toEqual([
      { step: 10, loss: 0.5 },
      { step: 20, loss: 0.4 },
    ]);
    // train-vae also logged its last step when that was not a multiple of 10.
    expect(historyOf([0.5, 0.4, 0.3], 25, 'reconstruction').map((h) => h.step)).toEqual([10, 20, 25]);
    expect(historyOf([0.5, 0.4], 25, 'reconstruction').map((h) => h.step)).toEqual([10, 20]);
    expect(historyOf(undefined, 25, 'loss')).toEqual([]);
    expect(historyOf([{ step: 3, total: 1 }], 3)).toEqual([{ step: 3, total: 1 }]);
    expect(() => historyOf([1, 2], 20)).toThrow(/bare numbers/);
  });
});
