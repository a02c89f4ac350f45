/**
 * Scoped auto-dispose. `tidy(fn)` disposes every tensor created while `fn` runs, except the ones it returns
 * (which move to the enclosing scope) and the ones marked with `keep()`. Tensors created outside any scope
 * live until `dispose()` (or, as a safety net, until they are garbage collected).
 */

/** What a scope needs of a tensor (declared here so that scopes do not depend on the Tensor class). */
export interface Scoped {
  kept: boolean;
  dispose(): void;
}

const scopes: Set<Scoped>[] = [];

export function trackTensor(t: Scoped): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Excludes a tensor from automatic disposal by every enclosing and future scope. */
export function keep<T extends Scoped>(t: T): T {
  t.kept = true;
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(value: unknown, into: Set<Scoped>, isTensor: (v: unknown) => v is Scoped): void {
  if (isTensor(value)) into.add(value);
  else if (Array.isArray(value)) for (const v of value) collect(v, into, isTensor);
  else if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, into, isTensor);
  }
}

let isTensorFn: (v: unknown) => v is Scoped = (v): v is Scoped => false;
export function setTensorCheck(f: (v: unknown) => v is Scoped): void {
  isTensorFn = f;
}

/**
 * Runs `fn` and disposes the tensors it created, except those in its result (a tensor, or arrays/plain
 * objects of them). `fn` must be synchronous: a promise would outlive the scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Scoped>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    for (const t of scope) if (!t.kept) t.dispose();
    throw e;
  } finally {
    scopes.pop();
  }
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    for (const t of scope) t.dispose();
    throw new Error('tidy: the function returned a Promise; tidy scopes must be synchronous (await outside of tidy)');
  }
  const returned = new Set<Scoped>();
  collect(result, returned, isTensorFn);
  for (const t of scope) {
    if (returned.has(t)) trackTensor(t);
    else if (!t.kept) t.dispose();
  }
  return result;
}

/** Disposes tensors found in a value (a tensor, or arrays/plain objects of them). */
export function dispose(value: unknown): void {
  const found = new Set<Scoped>();
  collect(value, found, isTensorFn);
  for (const t of found) t.dispose();
}
