/**
 * Waiting for a CPU adapter without spinning a core.
 *
 * Dawn's Node binding (npm `webgpu`) settles its promises (mapAsync, onSubmittedWorkDone) by calling
 * `setImmediate` in a loop that processes the device's events until none is pending: while the device works and
 * the event loop is idle, the main thread spins. On a GPU that costs a host core; on a CPU adapter (lavapipe) the
 * device's kernels run on the same cores, and the spin takes one of them away (on 2 cores a chain of matmuls took
 * 10-25% longer, with 60% more CPU time). The binding looks `setImmediate` up on the global object at every call,
 * so while waits are pending it is given a version that defers callbacks by a millisecond timer instead: the
 * events are still processed, a thousand times a second rather than continuously.
 *
 * Only in Node (browsers have no setImmediate and their own event loop), and only while a device that asked for
 * it has work pending; the original is restored when the last such wait ends, unless someone replaced it since.
 */

type SetImmediate = typeof globalThis.setImmediate;

let pending = 0;
let original: SetImmediate | null = null;
let installed: SetImmediate | null = null;

const deferred = ((callback: (...args: unknown[]) => void, ...args: unknown[]) =>
  setTimeout(callback, 1, ...args)) as unknown as SetImmediate;

/** Whether this runtime has a global setImmediate to replace (Node). */
export const canQuietWait = (): boolean => typeof globalThis.setImmediate === 'function';

/** Marks a wait as pending: the first one installs the deferring setImmediate. */
export function beginQuietWait(): void {
  if (pending++ > 0 || !canQuietWait()) return;
  original = globalThis.setImmediate;
  installed = deferred;
  globalThis.setImmediate = deferred;
}

/** Marks a wait as finished: the last one restores the original setImmediate. */
export function endQuietWait(): void {
  if (pending === 0) return;
  if (--pending > 0 || !original) return;
  if (globalThis.setImmediate === installed) globalThis.setImmediate = original;
  original = null;
  installed = null;
}

/**
 * Awaits `promise` (a Dawn promise of some other WebGPU user on the same process, e.g. a benchmark peer) with
 * Dawn's polling deferred as the device's own waits are.
 */
export async function waitQuietly<R>(promise: Promise<R>): Promise<R> {
  beginQuietWait();
  try {
    return await promise;
  } finally {
    endQuietWait();
  }
}

/** Waits currently pending (for tests). */
export const quietWaitsPending = (): number => pending;
