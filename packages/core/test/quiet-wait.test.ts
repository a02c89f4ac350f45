import * as T from '@leffa-webgpu/core';
import { describe, expect, it } from 'vitest';
import { beginQuietWait, endQuietWait, quietWaitsPending, waitQuietly } from '../src/device/quiet-wait.js';

const device = await T.init();

describe('quiet waits (Dawn polls on a timer, not in a setImmediate spin)', () => {
  it('replaces setImmediate while waits are pending and restores it after the last', async () => {
    const original = globalThis.setImmediate;
    beginQuietWait();
    beginQuietWait();
    const replaced = globalThis.setImmediate;
    expect(replaced).not.toBe(original);
    // Callbacks still run, with their arguments, a timer later.
    const got = await new Promise<number[]>((resolve) => replaced((a: number, b: number) => resolve([a, b]), 1, 2));
    expect(got).toEqual([1, 2]);
    endQuietWait();
    expect(globalThis.setImmediate).toBe(replaced);
    endQuietWait();
    expect(globalThis.setImmediate).toBe(original);
    expect(quietWaitsPending()).toBe(0);
    // An unmatched end changes nothing.
    endQuietWait();
    expect(globalThis.setImmediate).toBe(original);
  });

  it('waitQuietly holds the deferral for the length of a promise, resolved or rejected', async () => {
    const original = globalThis.setImmediate;
    let during: typeof setImmediate | null = null;
    const value = await waitQuietly(
      new Promise<number>((resolve) =>
        setTimeout(() => {
          during = globalThis.setImmediate;
          resolve(5);
        }, 2),
      ),
    );
    expect(value).toBe(5);
    expect(during).not.toBe(original);
    expect(globalThis.setImmediate).toBe(original);
    await expect(waitQuietly(Promise.reject(new Error('lost')))).rejects.toThrow('lost');
    expect(quietWaitsPending()).toBe(0);
    expect(globalThis.setImmediate).toBe(original);
  });

  it('leaves a setImmediate someone else installed meanwhile in place', () => {
    const original = globalThis.setImmediate;
    beginQuietWait();
    const theirs = ((fn: () => void) => original(fn)) as unknown as typeof setImmediate;
    globalThis.setImmediate = theirs;
    endQuietWait();
    expect(globalThis.setImmediate).toBe(theirs);
    globalThis.setImmediate = original;
  });

  it.runIf(device.report.isCpu)(
    'a CPU adapter defers while its work is pending, and gives setImmediate back when all is read',
    async () => {
      const original = globalThis.setImmediate;
      const y = T.tidy(() => T.keep(T.sum(T.mul(T.ones([256, 256]), 2))));
      const read = y.data();
      // The read's submit happens in a microtask; after it, work is pending.
      await Promise.resolve();
      expect(quietWaitsPending()).toBeGreaterThan(0);
      expect(globalThis.setImmediate).not.toBe(original);
      expect((await read)[0]).toBe(2 * 256 * 256);
      await device.sync();
      // onSubmittedWorkDone's handlers settle in the same turn as sync's.
      await new Promise((r) => setTimeout(r, 5));
      expect(quietWaitsPending()).toBe(0);
      expect(globalThis.setImmediate).toBe(original);
      y.dispose();
    },
  );
});
