import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS, LeffaModel } from '@leffa-webgpu/models';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { Progress } from '../src/cli/progress.js';
import { trainVae } from '../src/cli/train-vae.js';
import { SyntheticLeffaSource } from '@leffa-webgpu/data';
import { evaluateLeffaSeeds } from '../src/index.js';

/** A stream that records what is written; `isTTY` makes it look like a terminal to the progress bar. */
function capture(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as Writable & Partial<NodeJS.WriteStream>;
  Object.assign(stream, {
    isTTY,
    columns: 200,
    cursorTo: (_x: number, cb?: () => void) => (cb?.(), true),
    clearLine: (_d: number, cb?: () => void) => (cb?.(), true),
    moveCursor: () => true,
  });
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => chunks.join('') };
}

const tmp = mkdtempSync(join(tmpdir(), 'leffa-progress-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('Progress', () => {
  it('on a terminal the bar moves on every update, and the last values stay on it', () => {
    vi.useFakeTimers();
    const out = capture(true);
    const p = new Progress('train', 6, ['loss'], 0, out.stream);
    for (let step = 1; step <= 6; step++) {
      vi.advanceTimersByTime(250);
      p.update(step, step === 2 ? { loss: 0.5 } : undefined);
      expect(out.text()).toContain(`${step}/6`);
    }
    p.stop();
    expect(
      out
        .text()
        .split(/\r|\n/)
        .filter((l) => l.includes('6/6'))
        .at(-1),
    ).toContain('loss 0.5000');
  });

  it('without a terminal: a line when values arrive and at the end, not one per step', () => {
    const out = capture(false);
    const p = new Progress('train', 6, ['loss'], 0, out.stream);
    for (let step = 1; step <= 6; step++) p.update(step, step === 3 ? { loss: 0.25 } : undefined);
    p.stop();
    const lines = out.text().trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^train 3\/6 \| loss 0\.2500 \| [\d.]+ it\/s \| ETA \d+s$/);
    expect(lines[1]).toMatch(/^train 6\/6 \| loss 0\.2500 \| /);
  });

  it('a training command reports every step, not only the logged ones (a 6-step run does not sit at 0/6)', async () => {
    const seen: number[] = [];
    const original = Progress.prototype.update;
    vi.spyOn(Progress.prototype, 'update').mockImplementation(function (this: Progress, done, values) {
      seen.push(done);
      original.call(this, done, values);
    });
    await trainVae({
      out: join(tmp, 'vae'),
      steps: 6,
      batch: 2,
      height: 32,
      width: 32,
      lr: 1e-3,
      seed: 0,
      saveEvery: 100,
    });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a seed-averaged evaluation reports every sampling step of every seed', async () => {
    await T.init();
    T.manualSeed(3);
    const model = new LeffaModel(LEFFA_CONFIGS.tiny);
    const examples = new SyntheticLeffaSource('tryon', 32, 24, 900).take(1);
    const calls: [number, number][] = [];
    await evaluateLeffaSeeds(model, examples, {
      steps: 2,
      seeds: [0, 5],
      onStep: (s, total) => calls.push([s, total]),
    });
    model.dispose();
    expect(calls).toEqual([
      [1, 4],
      [2, 4],
      [3, 4],
      [4, 4],
    ]);
  });
});
