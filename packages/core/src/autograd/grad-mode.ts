/** Whether ops record the graph for backward. Off inside `noGrad` and while backward rules run. */
let enabled = true;

export function isGradEnabled(): boolean {
  return enabled;
}

export function setGradEnabled(value: boolean): boolean {
  const previous = enabled;
  enabled = value;
  return previous;
}

/**
 * Runs `fn` without recording gradients. An async `fn` keeps recording off until its promise settles;
 * work interleaved from elsewhere during that time is not recorded either.
 */
export function noGrad<T>(fn: () => T): T {
  const previous = setGradEnabled(false);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    setGradEnabled(previous);
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => setGradEnabled(previous)) as T;
  }
  setGradEnabled(previous);
  return result;
}
