/**
 * Training checkpoints: a directory holding
 *   model.safetensors      the module's state dict (parameters and persistent buffers, dotted names)
 *   optimizer.safetensors  optimizer state tensors; hyper-parameters and step counts in the metadata
 *   ema.safetensors        EMA shadows by parameter name (loadable as model weights); its state in the metadata
 *   state.json             format marker and the caller's JSON (`extra`: step, config, generator state, ...)
 *
 * Saving is atomic: everything is written and flushed into a temporary sibling directory (`<dir>.tmp-<pid>-...`),
 * which then replaces the target by two renames (old -> `<dir>.previous`, new -> `<dir>`). At every instant at
 * least one complete checkpoint is on disk, at `<dir>` or at `<dir>.previous` (which `loadCheckpoint` falls back
 * to): a crash, a kill or an I/O error at any point leaves the old checkpoint or the new one, never only a
 * half-written one. A save after an interrupted one keeps `<dir>.previous` until the new `<dir>` is complete,
 * and removes temporary directories that dead processes left behind.
 */
import type { Module } from '../nn/module.js';
import { dispose } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  type FileSystem,
  openSafetensors,
  readSafetensors,
  placeLoaded,
  saveSafetensors,
  writeFileAtomic,
} from './safetensors.js';

const FORMAT = 'leffa-webgpu-checkpoint';
const VERSION = 1;

/** Anything with a tensors-plus-JSON state dict (optimizers, EMA). */
export interface StatefulPart {
  stateDict(): { tensors: Map<string, Tensor>; meta: unknown };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  loadStateDict(dict: { tensors: Map<string, Tensor>; meta: any }): void;
}

export interface CheckpointParts {
  model: Module;
  optimizer?: StatefulPart;
  ema?: StatefulPart;
}

export interface SaveCheckpointOptions extends CheckpointParts {
  /** JSON-serialisable training state: step, config, generator state (`generator.getState()`), ... */
  extra?: unknown;
  /** Storage type of the model weights ('F16' halves the size of a shipped, inference-only checkpoint). */
  modelDtype?: 'F32' | 'F16';
  /**
   * Refuse to save when a model, optimizer or EMA tensor holds NaN or infinity (a diverged run): throws a
   * `NonFiniteError` naming the tensor, and the checkpoint already on disk stays as it was.
   */
  requireFinite?: boolean;
  /** The file system (default node:fs/promises); tests inject faults through it to check the crash guarantees. */
  fs?: FileSystem;
}

export interface LoadCheckpointOptions extends CheckpointParts {
  /** Strict model state-dict loading (default true), as `Module.loadStateDict`. */
  strict?: boolean;
}

async function nodeFs(): Promise<FileSystem> {
  const name = 'node:fs/promises';
  return (await import(/* @vite-ignore */ name)) as typeof import('node:fs/promises');
}

const exists = (fs: FileSystem, path: string) =>
  fs.stat(path).then(
    () => true,
    () => false,
  );

/** A checkpoint directory is complete once its state.json exists (written last, see saveCheckpoint). */
const isComplete = (fs: FileSystem, dir: string) => exists(fs, `${dir}/state.json`);

/** Removes a checkpoint directory state.json first, so a removal cut short never looks complete. */
async function removeCheckpointDir(fs: FileSystem, dir: string): Promise<void> {
  await fs.rm(`${dir}/state.json`, { force: true });
  await fs.rm(dir, { recursive: true, force: true });
}

/** Flushes a directory entry list to disk (best effort: not every platform can open directories). */
async function syncDir(fs: FileSystem, path: string): Promise<void> {
  try {
    const h = await fs.open(path, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Durability of the rename is then up to the OS; atomicity does not depend on it.
  }
}

/** Whether a process with this id is running (EPERM: it is, but belongs to someone else). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Temporary directories of saves in progress in this process (any other of this process's is a leftover). */
const activeTemps = new Set<string>();

/**
 * Removes `<target>.tmp-<pid>-...` directories left by saves of processes that are no longer running, and by
 * failed saves of this one whose own cleanup failed.
 */
async function removeStaleTemps(fs: FileSystem, target: string): Promise<void> {
  const slash = target.lastIndexOf('/');
  const parent = slash < 0 ? '.' : slash === 0 ? '/' : target.slice(0, slash);
  const base = target.slice(slash + 1);
  let names: string[];
  try {
    names = (await fs.readdir(parent)) as string[];
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^\.tmp-(\d+)-/.exec(name.startsWith(base) ? name.slice(base.length) : '');
    const path = `${parent}/${name}`;
    if (!m || activeTemps.has(path) || (Number(m[1]) !== process.pid && processAlive(Number(m[1])))) continue;
    await fs.rm(path, { recursive: true, force: true }).catch(() => undefined);
  }
}

const PART_FILES = { optimizer: 'optimizer.safetensors', ema: 'ema.safetensors' } as const;

/** Writes a checkpoint directory atomically (see the module comment). Replaces an existing checkpoint at `dir`. */
export async function saveCheckpoint(dir: string, options: SaveCheckpointOptions): Promise<void> {
  const { extra = null } = options;
  const fs = options.fs ?? (await nodeFs());
  const target = dir.replace(/\/+$/, '');
  // Serialise the JSON first: a value JSON cannot hold fails before anything is written.
  const files = [
    'model.safetensors',
    ...(['optimizer', 'ema'] as const).filter((k) => options[k]).map((k) => PART_FILES[k]),
  ];
  let stateJson: string;
  try {
    stateJson = JSON.stringify({ format: FORMAT, version: VERSION, files, extra }, null, 2);
  } catch (e) {
    throw new Error(`saveCheckpoint: extra is not JSON-serialisable (${(e as Error).message})`);
  }
  if (await exists(fs, target)) {
    const entries = await fs.readdir(target);
    if (entries.length > 0 && !(await isComplete(fs, target))) {
      throw new Error(
        `saveCheckpoint: '${target}' exists and is not a checkpoint (no state.json); refusing to replace it`,
      );
    }
  }
  await removeStaleTemps(fs, target);
  const tmp = `${target}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  activeTemps.add(tmp);
  try {
    await swapIn(fs, target, tmp, options, stateJson);
  } finally {
    activeTemps.delete(tmp);
  }
}

/** saveCheckpoint's two phases: write `tmp` completely, then swap it in for `target`. */
async function swapIn(
  fs: FileSystem,
  target: string,
  tmp: string,
  options: SaveCheckpointOptions,
  stateJson: string,
): Promise<void> {
  const { model, requireFinite = false } = options;
  const previous = `${target}.previous`;
  const parent = `${target}/..`;
  // 1. The new checkpoint, complete and flushed, beside the old one.
  try {
    await fs.mkdir(tmp, { recursive: true });
    await saveSafetensors(`${tmp}/model.safetensors`, model.stateDict(), {
      dtype: options.modelDtype ?? 'F32',
      requireFinite,
      fs,
    });
    for (const key of ['optimizer', 'ema'] as const) {
      const part = options[key];
      if (!part) continue;
      const { tensors, meta } = part.stateDict();
      await saveSafetensors(`${tmp}/${PART_FILES[key]}`, tensors, {
        metadata: { state: JSON.stringify(meta) },
        requireFinite,
        fs,
      });
    }
    // state.json last: a directory with it is complete.
    await writeFileAtomic(`${tmp}/state.json`, stateJson, fs);
    await syncDir(fs, tmp);
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  // 2. The swap. Invariant: `target` or `previous` is complete at every instant.
  try {
    if (await isComplete(fs, target)) {
      // The target is complete, so an older copy at `previous` can go; then the target becomes `previous`.
      await removeCheckpointDir(fs, previous);
      await fs.rename(target, previous);
      await syncDir(fs, parent);
    } else if (await exists(fs, target)) {
      // An empty directory (anything else was refused above); `previous` may be the only complete copy: keep it.
      await fs.rm(target, { recursive: true, force: true });
    }
    await fs.rename(tmp, target);
    await syncDir(fs, parent);
  } catch (e) {
    // Put the old checkpoint back where it was when the new one did not arrive (best effort: `previous`
    // is loadable either way).
    if (!(await isComplete(fs, target)) && (await isComplete(fs, previous)))
      await fs.rename(previous, target).catch(() => undefined);
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  // The new checkpoint is in place; the old one is no longer needed (a leftover is removed by the next save).
  await removeCheckpointDir(fs, previous).catch(() => undefined);
}

/** A checkpoint whose state.json has been read: its `extra`, and a loader for its tensors. */
export interface OpenedCheckpoint {
  /** Where it lives (a folder or a URL), for messages. */
  readonly source: string;
  /** state.json's `extra` (null when none was saved). */
  readonly extra: unknown;
  /**
   * Loads the model (and optimizer / EMA, whose files must then exist). Values are copied or adopted; the
   * caller's objects keep their identity, so an optimizer built on the model's parameters stays valid.
   */
  load(options: LoadCheckpointOptions): Promise<void>;
}

type TensorFile = { tensors: Map<string, Tensor>; metadata: Record<string, string> };

/** Parses and checks state.json; every error names the file. */
function parseState(source: string, stateText: string): { files: string[]; extra: unknown } {
  const where = `loadCheckpoint: '${source}/state.json'`;
  let state: unknown;
  try {
    state = JSON.parse(stateText);
  } catch (e) {
    throw new Error(`${where} is not valid JSON (${(e as Error).message}); the checkpoint is damaged`);
  }
  if (typeof state !== 'object' || state === null || Array.isArray(state)) {
    throw new Error(
      `${where} holds ${state === null ? 'null' : Array.isArray(state) ? 'an array' : typeof state}, expected a ${FORMAT} object`,
    );
  }
  const { format, version, files, extra } = state as {
    format?: unknown;
    version?: unknown;
    files?: unknown;
    extra?: unknown;
  };
  if (format !== FORMAT || version !== VERSION) {
    throw new Error(
      `${where} is not a ${FORMAT} v${VERSION} file (format ${JSON.stringify(format)}, version ${JSON.stringify(version)})`,
    );
  }
  if (files !== undefined && (!Array.isArray(files) || files.some((f) => typeof f !== 'string'))) {
    throw new Error(`${where} has files ${JSON.stringify(files)}, expected a list of file names`);
  }
  return { files: (files as string[] | undefined) ?? [], extra: extra ?? null };
}

/**
 * The storage-independent half of loading: format check, then each part from `read(fileName, host)`. The model's
 * tensors are read into host memory (`host` true) and placed by `Module.loadStateDict`: uploaded for parameters on
 * the device, kept on the host for an offloaded module's.
 */
function openedCheckpoint(
  source: string,
  stateText: string,
  read: (file: string, host: boolean) => Promise<TensorFile>,
): OpenedCheckpoint {
  const state = parseState(source, stateText);
  return {
    source,
    extra: state.extra,
    async load(options) {
      const model = await read('model.safetensors', true);
      try {
        options.model.loadStateDict(model.tensors, { strict: options.strict ?? true });
      } finally {
        dispose([...model.tensors.values()]);
      }
      for (const key of ['optimizer', 'ema'] as const) {
        const part = options[key];
        if (!part) continue;
        if (!state.files.includes(PART_FILES[key]))
          throw new Error(`loadCheckpoint: '${source}' holds no ${key} state (${PART_FILES[key]})`);
        const { tensors, metadata } = await read(PART_FILES[key], false);
        const where = `loadCheckpoint: '${source}/${PART_FILES[key]}'`;
        try {
          if (metadata.state === undefined) throw new Error(`${where} has no 'state' metadata`);
          let meta: unknown;
          try {
            meta = JSON.parse(metadata.state);
          } catch (e) {
            throw new Error(`${where}: its 'state' metadata is not valid JSON (${(e as Error).message})`);
          }
          try {
            part.loadStateDict({ tensors, meta });
          } catch (e) {
            throw new Error(`${where}: ${(e as Error).message}`);
          }
        } finally {
          dispose([...tensors.values()]);
        }
      }
    },
  };
}

/** Opens a checkpoint folder written by `saveCheckpoint` (Node), falling back to `<dir>.previous` after an interrupted save. */
export async function openCheckpoint(dir: string): Promise<OpenedCheckpoint> {
  const fs = await nodeFs();
  let src = dir.replace(/\/+$/, '');
  if (!(await exists(fs, `${src}/state.json`))) {
    // Interrupted between the two renames of a save: the previous checkpoint is complete.
    if (await exists(fs, `${src}.previous/state.json`)) src = `${src}.previous`;
    else throw new Error(`loadCheckpoint: '${dir}' is not a checkpoint (no state.json)`);
  }
  let stateText: string;
  try {
    stateText = (await fs.readFile(`${src}/state.json`, 'utf8')) as string;
  } catch (e) {
    throw new Error(`loadCheckpoint: cannot read '${src}/state.json' (${(e as Error).message})`);
  }
  return openedCheckpoint(src, stateText, async (file, host) => {
    if (!(await exists(fs, `${src}/${file}`))) throw new Error(`loadCheckpoint: '${src}' has no ${file}`);
    return readTensors(`${src}/${file}`, host);
  });
}

/**
 * Opens a checkpoint folder served over HTTP (browsers, or Node's fetch): `url` is the folder's address;
 * state.json and the safetensors files are fetched from under it.
 */
export async function openCheckpointUrl(url: string, fetchFn: typeof fetch = fetch): Promise<OpenedCheckpoint> {
  const base = url.replace(/\/+$/, '');
  const get = async (file: string): Promise<Response> => {
    const response = await fetchFn(`${base}/${file}`);
    if (!response.ok)
      throw new Error(
        `loadCheckpoint: fetching '${base}/${file}' failed (HTTP ${response.status} ${response.statusText})`,
      );
    return response;
  };
  return openedCheckpoint(base, await (await get('state.json')).text(), async (file, host) => {
    const parsed = readSafetensors(new Uint8Array(await (await get(file)).arrayBuffer()), `${base}/${file}`);
    return { tensors: placeLoaded(parsed.tensors, { host }), metadata: parsed.metadata };
  });
}

/**
 * Loads a checkpoint folder written by `saveCheckpoint` into the given model (and optimizer / EMA) and
 * returns its `extra` JSON (see `OpenedCheckpoint.load`).
 */
export async function loadCheckpoint(dir: string, options: LoadCheckpointOptions): Promise<unknown> {
  const opened = await openCheckpoint(dir);
  await opened.load(options);
  return opened.extra;
}

async function readTensors(path: string, host: boolean): Promise<TensorFile> {
  const file = await openSafetensors(path);
  const tensors = new Map<string, Tensor>();
  try {
    for (const name of file.header.entries.keys())
      tensors.set(name, placeLoaded(new Map([[name, await file.read(name)]]), { host }).get(name)!);
    return { tensors, metadata: file.header.metadata };
  } catch (e) {
    dispose([...tensors.values()]);
    throw e;
  } finally {
    await file.close();
  }
}
