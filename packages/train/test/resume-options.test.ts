// `--resume <dir>` alone continues a run with the options it was started with (recorded in its checkpoint).
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'resume-options-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = runCli;

// Options that change the weights a step produces (batch, warm-up, colour weight, shape): a resume that dropped them would
// not reproduce the uninterrupted run.
const RUN = [
  ...['--size', '16x12', '--batch', '2', '--block-channels', '8,16', '--latent-channels', '4'],
  ...['--lr', '3e-3', '--warmup-steps', '3', '--chroma-weight', '0.5', '--seed', '3'],
];
const state = (dir: string) => JSON.parse(readFileSync(join(dir, 'checkpoint', 'state.json'), 'utf8')).extra;

describe('train --resume', () => {
  it('restores the options left out, so a resumed run ends where the uninterrupted one does', async () => {
    const whole = join(tmp, 'whole');
    const split = join(tmp, 'split');
    // A save interrupted between its two renames leaves only `checkpoint.previous`; the resume reads it there.
    const interrupted = join(tmp, 'interrupted');
    for (const r of [
      await cli('train-vae', ...RUN, '--steps', '4', '--out', whole),
      await cli('train-vae', ...RUN, '--steps', '2', '--out', split),
    ])
      expect(r.code, r.stderr).toBe(0);
    cpSync(join(split, 'checkpoint'), join(interrupted, 'checkpoint.previous'), { recursive: true });
    for (const r of [
      await cli('train-vae', '--resume', join(split, 'checkpoint'), '--steps', '4', '--out', split),
      await cli('train-vae', '--resume', join(interrupted, 'checkpoint'), '--steps', '4', '--out', interrupted),
    ])
      expect(r.code, r.stderr).toBe(0);
    // The new length is recorded too: it is the run's extent from now on.
    expect(state(split).cli).toMatchObject({ batch: 2, size: [16, 12], warmupSteps: 3, steps: 4 });
    // (A cosine would not do: it spans --steps, which a resume may change.)
    expect(state(split).history.at(-1)).toEqual(state(whole).history.at(-1));
    const weights = (dir: string) => readFileSync(join(dir, 'checkpoint', 'model.safetensors'));
    expect(weights(split).equals(weights(whole))).toBe(true);
    expect(weights(interrupted).equals(weights(whole))).toBe(true);
  });

  it('keeps the recorded length when --steps is left out (a cosine spans it), so a finished run stays finished', async () => {
    const dir = join(tmp, 'cosine');
    const cosine = [...RUN, '--lr-schedule', 'cosine', '--min-lr', '1e-4', '--save-every', '3'];
    const first = await cli('train-vae', ...cosine, '--steps', '3', '--out', dir);
    expect(first.code, first.stderr).toBe(0);
    const before = readFileSync(join(dir, 'checkpoint', 'model.safetensors'));
    // No --out either: the run goes on in the folder that holds its checkpoint (and writes its metrics there).
    rmSync(join(dir, 'metrics.json'));
    const again = await cli('train-vae', '--resume', join(dir, 'checkpoint'));
    expect(again.code, again.stderr).toBe(0);
    expect(existsSync(join(dir, 'metrics.json'))).toBe(true);
    expect(state(dir)).toMatchObject({ step: 3, cli: { steps: 3, saveEvery: 3, lrSchedule: 'cosine' } });
    expect(readFileSync(join(dir, 'checkpoint', 'model.safetensors')).equals(before)).toBe(true);
  });

  it('resumes a run started from --init (a decoder-only run) without naming the --init again', async () => {
    const dir = join(tmp, 'decoder');
    const from = join(tmp, 'whole', 'checkpoint');
    const common = ['--size', '16x12', '--batch', '2', '--seed', '5'];
    const first = await cli(
      'train-vae',
      '--init',
      from,
      '--decoder-only',
      '--decoder-channels',
      '16,16',
      ...common,
      '--steps',
      '1',
      '--out',
      dir,
    );
    expect(first.code, first.stderr).toBe(0);
    const resumed = await cli('train-vae', '--resume', join(dir, 'checkpoint'), '--steps', '2', '--out', dir);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(state(dir)).toMatchObject({ step: 2, decoderOnly: true, config: { decoderBlockOutChannels: [16, 16] } });
    const other = await cli(
      'train-vae',
      '--resume',
      join(dir, 'checkpoint'),
      '--init',
      join(tmp, 'split', 'checkpoint'),
      '--steps',
      '3',
    );
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/--init ".*split\/checkpoint" contradicts the resumed run's/);
  });

  it('refuses an option that contradicts the run it resumes', async () => {
    const r = await cli('train-vae', '--resume', join(tmp, 'split', 'checkpoint'), '--batch', '4', '--steps', '6');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /train-vae: --batch 4 contradicts the resumed run's 2 .*--resume continues a run with its own settings/,
    );
  });
});
