/**
 * What keeps a training run's output folder consistent:
 * - `lockRunFolder`: one run per `--out` folder. A lock file `<out>/.lock` holds the owner's PID; a second run
 *   is refused with a message naming it, and a lock whose process is gone (a crash, a kill) is taken over.
 * - `RunGuard`: stops a run whose loss turned NaN or infinite (checked on the values already read back for
 *   logging) or whose weights did (a checkpoint save refuses non-finite tensors), without saving the bad
 *   weights: the last good checkpoint stays, and the error says at which step and where that checkpoint is.
 */
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import * as T from '@leffa-webgpu/core';

export interface RunLock {
  /** The lock file, `<out>/.lock`. */
  readonly path: string;
  /** Removes the lock file (if it is still this process's). */
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  command?: string;
  started?: string;
}

async function readOwner(path: string): Promise<LockOwner | null> {
  try {
    const owner = JSON.parse(await readFile(path, 'utf8')) as LockOwner;
    return Number.isInteger(owner?.pid) ? owner : null;
  } catch {
    return null;
  }
}

/**
 * Takes the lock of a run's output folder (creating the folder), or throws when another live process holds
 * it. The lock file appears whole (written aside, then hard-linked into place), so a reader never sees it
 * half-written.
 */
export async function lockRunFolder(out: string, command: string): Promise<RunLock> {
  await mkdir(out, { recursive: true });
  const path = `${out.replace(/\/+$/, '')}/.lock`;
  const mine = `${path}.${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  await writeFile(mine, `${JSON.stringify({ pid: process.pid, command, started: new Date().toISOString() })}\n`);
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await link(mine, path);
        return {
          path,
          release: async () => {
            if ((await readOwner(path))?.pid === process.pid) await rm(path, { force: true });
          },
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
          throw new Error(`${command}: cannot create the lock file '${path}' (${(e as Error).message})`);
      }
      const owner = await readOwner(path);
      if (owner && (owner.pid === process.pid || T.processAlive(owner.pid))) {
        const who =
          owner.pid === process.pid
            ? 'this process'
            : `another run (PID ${owner.pid}${owner.command ? `, ${owner.command}` : ''}${owner.started ? `, since ${owner.started}` : ''})`;
        throw new Error(
          `${command}: the output folder '${out}' is in use by ${who}; lock file ${path}. ` +
            "Two runs writing one folder would replace each other's checkpoints: wait for it to finish, or give another --out.",
        );
      }
      // Stale: its process is gone. Move it aside; if what was moved turns out to be a live run's fresh lock
      // (two runs taking over at once), put it back.
      const aside = `${path}.stale-${process.pid}`;
      try {
        await rename(path, aside);
      } catch {
        continue; // someone else moved it first
      }
      const moved = await readOwner(aside);
      if (moved && moved.pid !== owner?.pid && T.processAlive(moved.pid))
        await link(aside, path).catch(() => undefined);
      else
        console.warn(`${command}: taking over the stale lock ${path} of PID ${owner?.pid ?? '?'} (no longer running)`);
      await rm(aside, { force: true });
    }
    throw new Error(`${command}: could not take the lock file '${path}': other runs keep starting in '${out}'`);
  } finally {
    await rm(mine, { force: true });
  }
}

/** Runs `body` holding the lock of `out`; the lock is released however it ends. */
export async function withRunLock<R>(out: string, command: string, body: () => Promise<R>): Promise<R> {
  const lock = await lockRunFolder(out, command);
  try {
    return await body();
  } finally {
    await lock.release();
  }
}

/** Stops a diverged run: see the module comment. */
export class RunGuard {
  private lastGood: { step: number; where: string } | null;

  /** `resumedFrom`: the checkpoint the run started from, the last good one until this run saves its own. */
  constructor(
    readonly command: string,
    resumedFrom?: { step: number; where: string },
  ) {
    this.lastGood = resumedFrom ?? null;
  }

  private stop(what: string): Error {
    const kept = this.lastGood
      ? `The last good checkpoint, from step ${this.lastGood.step}, is kept at ${this.lastGood.where}; resume from it with a lower --lr.`
      : 'No checkpoint had been saved yet.';
    return new Error(`${this.command}: ${what}; stopped without saving. ${kept}`);
  }

  /** Throws when a logged value (the losses already read back) is NaN or infinite. */
  check(step: number, values: Record<string, number>): void {
    const bad = Object.entries(values).filter(([, v]) => !Number.isFinite(v));
    if (bad.length > 0)
      throw this.stop(`the loss turned non-finite at step ${step} (${bad.map(([k, v]) => `${k} ${v}`).join(', ')})`);
  }

  /** Runs a checkpoint save (whose tensors must be finite: `requireFinite`), recording it as the last good one. */
  async save(step: number, where: string, save: () => Promise<void>): Promise<void> {
    try {
      await save();
    } catch (e) {
      if (e instanceof T.NonFiniteError)
        throw this.stop(`the weights turned non-finite by step ${step} (tensor '${e.tensorName}')`);
      throw e;
    }
    this.lastGood = { step, where };
  }
}
