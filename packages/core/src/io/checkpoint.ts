/**
 * Training checkpoints: a directory holding
 *   model.safetensors      the module's state dict (parameters and persistent buffers, dotted names)
 *   optimizer.safetensors  optimizer state tensors; hyper-parameters and step counts in the metadata
 *   ema.safetensors        EMA shadows by parameter name (loadable as model weights); its state in the metadata
 *   state.json             format marker and the caller's JSON (`extra`: step, config, generator state, ...)
 *
 * Saving is atomic: everything is written and flushed into a temporary sibling directory, which then replaces
 * the target by rename. A crash leaves either the old checkpoint, or the new one, or (between the two renames)
 * the old one at `<dir>.previous`, which `loadCheckpoint` falls back to. Never a half-written checkpoint.
 */
import type { Module } from '../nn/module.js';
import { dispose } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { openSafetensors, readSafetensors, saveSafetensors, toDevice, writeFileAtomic } from './safetensors.js';

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
}

export interface LoadCheckpointOptions extends CheckpointParts {
  /** Strict model state-dict loading (default true), as `Module.loadStateDict`. */
  strict?: boolean;
}

async function nodeFs() {
  const name = 'node:fs/promises';
  return (await import(/* @vite-ignore */ name)) as typeof import('node:fs/promises');
}

type Fs = Awaited<ReturnType<typeof nodeFs>>;

const exists = (fs: Fs, path: string) =>
  fs.stat(path).then(
    () => true,
    () => false,
  );

/** Flushes a directory entry list to disk (best effort: not every platform can open directories). */
async function syncDir(fs: Fs, path: string): Promise<void> {
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

const PART_FILES = { optimizer: 'optimizer.safetensors', ema: 'ema.safetensors' } as const;

/** Writes a checkpoint directory atomically (see the module comment). Replaces an existing checkpoint at `dir`. */
export async function saveCheckpoint(dir: string, options: SaveCheckpointOptions): Promise<void> {
  const { model, extra = null } = options;
  const fs = await nodeFs();
  const target = dir.replace(/\/+$/, '');
  // Serialise the JSON first: a value JSON cannot hold fails before anything is written.
  const files = ['model.safetensors', ...(['optimizer', 'ema'] as const).filter((k) => options[k]).map((k) => PART_FILES[k])];
  let stateJson: string;
  try {
    stateJson = JSON.stringify({ format: FORMAT, version: VERSION, files, extra }, null, 2);
  } catch (e) {
    throw new Error(`saveCheckpoint: extra is not JSON-serialisable (${(e as Error).message})`);
  }
  if (await exists(fs, target)) {
    const entries = await fs.readdir(target);
    if (entries.length > 0 && !(await exists(fs, `${target}/state.json`))) {
      throw new Error(`saveCheckpoint: '${target}' exists and is not a checkpoint (no state.json); refusing to replace it`);
    }
  }
  const tmp = `${target}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const previous = `${target}.previous`;
  await fs.mkdir(tmp, { recursive: true });
  let movedOld = false;
  try {
    await saveSafetensors(`${tmp}/model.safetensors`, model.stateDict(), { dtype: options.modelDtype ?? 'F32' });
    for (const key of ['optimizer', 'ema'] as const) {
      const part = options[key];
      if (!part) continue;
      const { tensors, meta } = part.stateDict();
      await saveSafetensors(`${tmp}/${PART_FILES[key]}`, tensors, { metadata: { state: JSON.stringify(meta) } });
    }
    // state.json last: a directory with it is complete.
    await writeFileAtomic(`${tmp}/state.json`, stateJson);
    await syncDir(fs, tmp);
    await fs.rm(previous, { recursive: true, force: true });
    if (await exists(fs, target)) {
      await fs.rename(target, previous);
      movedOld = true;
    }
    await fs.rename(tmp, target);
    await syncDir(fs, `${target}/..`);
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true });
    if (movedOld && !(await exists(fs, target))) await fs.rename(previous, target);
    throw e;
  }
  if (movedOld) await fs.rm(previous, { recursive: true, force: true });
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

/** The storage-independent half of loading: format check, then each part from `read(fileName)`. */
function openedCheckpoint(source: string, stateText: string, read: (file: string) => Promise<TensorFile>): OpenedCheckpoint {
  const state = JSON.parse(stateText) as { format?: string; version?: number; files?: string[]; extra?: unknown };
  if (state.format !== FORMAT || state.version !== VERSION) {
    throw new Error(`loadCheckpoint: '${source}/state.json' is not a ${FORMAT} v${VERSION} file (format ${state.format}, version ${state.version})`);
  }
  return {
    source,
    extra: state.extra ?? null,
    async load(options) {
      const model = await read('model.safetensors');
      try {
        options.model.loadStateDict(model.tensors, { strict: options.strict ?? true });
      } finally {
        dispose([...model.tensors.values()]);
      }
      for (const key of ['optimizer', 'ema'] as const) {
        const part = options[key];
        if (!part) continue;
        if (!state.files?.includes(PART_FILES[key])) throw new Error(`loadCheckpoint: '${source}' holds no ${key} state (${PART_FILES[key]})`);
        const { tensors, metadata } = await read(PART_FILES[key]);
        try {
          if (metadata.state === undefined) throw new Error(`loadCheckpoint: '${source}/${PART_FILES[key]}' has no 'state' metadata`);
          part.loadStateDict({ tensors, meta: JSON.parse(metadata.state) });
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
  return openedCheckpoint(src, await fs.readFile(`${src}/state.json`, 'utf8'), async (file) => {
    if (!(await exists(fs, `${src}/${file}`))) throw new Error(`loadCheckpoint: '${src}' has no ${file}`);
    return readTensors(`${src}/${file}`);
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
    if (!response.ok) throw new Error(`loadCheckpoint: fetching '${base}/${file}' failed (HTTP ${response.status} ${response.statusText})`);
    return response;
  };
  return openedCheckpoint(base, await (await get('state.json')).text(), async (file) => {
    const parsed = readSafetensors(new Uint8Array(await (await get(file)).arrayBuffer()), `${base}/${file}`);
    return { tensors: toDevice(parsed.tensors), metadata: parsed.metadata };
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

async function readTensors(path: string): Promise<TensorFile> {
  const file = await openSafetensors(path);
  const tensors = new Map<string, Tensor>();
  try {
    for (const name of file.header.entries.keys()) tensors.set(name, toDevice(new Map([[name, await file.read(name)]])).get(name)!);
    return { tensors, metadata: file.header.metadata };
  } catch (e) {
    dispose([...tensors.values()]);
    throw e;
  } finally {
    await file.close();
  }
}
