/**
 * The shape every trainer has (Leffa, VAE, OpenPose, SCHP, DensePose): `step` on the trainer's own batch type,
 * `stepCount`, `save` / `load` of a resumable checkpoint, and the random state that makes a resume bit-for-bit.
 * `TrainerBase` implements save, load and the random state once; a trainer names its checkpoint parts and the
 * extra fields it records.
 *
 * Random state: a trainer's draws come from its own streams, never from the global generator: `generator`
 * (GPU: noise, dropout, the initial weights of a model it builds) and `rng` (CPU: augmentation, timesteps,
 * pool indices). Both are saved in state.json's extra as `generator` ({ seed, offset }) and `rng` (a number).
 * Checkpoints written before SCHP and DensePose had their own generator recorded the global generator's state
 * under the same key; that generator drove the same draws, so they resume into the trainer's own one unchanged.
 * A checkpoint without a state the trainer uses is refused (it could not resume bit-for-bit).
 */
import * as T from '@leffa-webgpu/core';
import type { Rng } from '@leffa-webgpu/data';

export interface RandomState {
  generator?: { seed: number; offset: number };
  rng?: number;
}

export interface Trainer {
  /** Optimisation steps done (restored by `load`). */
  readonly stepCount: number;
  /** One optimisation step; its arguments are the trainer's batch, its result the detached losses. */
  step(...batch: never[]): unknown;
  /** Writes a resumable checkpoint atomically; `extra` joins state.json's extra (history, run settings). */
  save(dir: string, extra?: Record<string, unknown>): Promise<void>;
  /** Restores a `save`d checkpoint and returns its extra JSON. */
  load(dir: string): Promise<Record<string, unknown>>;
  randomState(): RandomState;
  setRandomState(state: RandomState): void;
}

/**
 * Runs `body` with `generator` standing in for the global generator, whose state is put back afterwards: for
 * models whose random layers draw from the global one (SCHP's Dropout2d) and for weight initialisation. The
 * trainer's stream advances by what `body` drew; `body` must be synchronous.
 */
export function withGenerator<R>(generator: T.Generator, body: () => R): R {
  const global = T.defaultGenerator.getState();
  T.defaultGenerator.setState(generator.getState());
  try {
    return body();
  } finally {
    generator.setState(T.defaultGenerator.getState());
    T.defaultGenerator.setState(global);
  }
}

const isGeneratorState = (v: unknown): v is { seed: number; offset: number } =>
  typeof v === 'object' &&
  v !== null &&
  Number.isFinite((v as { seed?: unknown }).seed) &&
  Number.isInteger((v as { offset?: unknown }).offset);

/** Save, load and random state for a trainer (see the module comment). */
export abstract class TrainerBase implements Trainer {
  stepCount = 0;
  /** The GPU random stream, or null for a trainer that draws nothing on the GPU. */
  abstract readonly generator: T.Generator | null;
  /** The CPU random stream, or null for a trainer that needs none. */
  abstract readonly rng: Rng | null;
  /** The class name, for error messages. */
  protected abstract readonly name: string;
  /** state.json's extra.kind, when the trainer's checkpoints carry one (pipelines and export read it). */
  protected readonly kind: string | undefined = undefined;

  abstract step(...batch: never[]): unknown;

  /** The model, optimizer and EMA (if any) a checkpoint holds. */
  protected abstract parts(): T.CheckpointParts;

  /** The extra fields the trainer records itself (config, options, ...). */
  protected ownExtra(): Record<string, unknown> {
    return {};
  }

  /** Refuses a checkpoint this trainer cannot continue; runs before any tensor is loaded. */
  protected checkExtra(_extra: Record<string, unknown>, _dir: string): void {}

  /** Restores what `ownExtra` recorded beyond the step and the random state. */
  protected restore(_extra: Record<string, unknown>): void {}

  randomState(): RandomState {
    return {
      ...(this.generator ? { generator: this.generator.getState() } : {}),
      ...(this.rng ? { rng: this.rng.getState() } : {}),
    };
  }

  setRandomState(state: RandomState): void {
    if (this.generator) {
      if (!isGeneratorState(state.generator))
        throw new Error(
          `${this.name}.setRandomState: needs the generator state { seed, offset }, got ${JSON.stringify(state.generator)}`,
        );
      this.generator.setState(state.generator);
    }
    if (this.rng) {
      if (!Number.isInteger(state.rng))
        throw new Error(
          `${this.name}.setRandomState: needs the rng state (an integer), got ${JSON.stringify(state.rng)}`,
        );
      this.rng.setState(state.rng!);
    }
  }

  async save(dir: string, extra: Record<string, unknown> = {}): Promise<void> {
    await T.saveCheckpoint(dir, {
      ...this.parts(),
      extra: {
        ...extra,
        ...(this.kind !== undefined ? { kind: this.kind } : {}),
        step: this.stepCount,
        ...this.randomState(),
        ...this.ownExtra(),
      },
      requireFinite: true,
    });
  }

  async load(dir: string): Promise<Record<string, unknown>> {
    const opened = await T.openCheckpoint(dir);
    const extra = opened.extra as Record<string, unknown> | null;
    const where = `${this.name}.load: '${dir}'`;
    if (this.kind !== undefined && extra?.kind !== this.kind)
      throw new Error(
        `${where} is not a ${this.kind} training checkpoint (state.json extra.kind is not '${this.kind}')`,
      );
    if (!extra || !Number.isInteger(extra.step))
      throw new Error(`${where} holds no training step (state.json extra.step); is it a training checkpoint?`);
    if (this.generator && !isGeneratorState(extra.generator))
      throw new Error(
        `${where} holds no generator state (state.json extra.generator { seed, offset }), so it cannot resume bit-for-bit`,
      );
    if (this.rng && !Number.isInteger(extra.rng))
      throw new Error(`${where} holds no data-stream state (state.json extra.rng), so it cannot resume bit-for-bit`);
    this.checkExtra(extra, dir);
    await opened.load(this.parts());
    this.stepCount = extra.step as number;
    this.setRandomState(extra as RandomState);
    this.restore(extra);
    return extra;
  }
}
