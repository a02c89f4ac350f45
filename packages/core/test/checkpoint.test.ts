import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as fsp from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const { Linear, Dropout } = T.nn;

let root: string;
beforeAll(async () => {
  await T.init();
  root = mkdtempSync(join(tmpdir(), 'leffa-ckpt-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Linear -> ReLU -> Dropout (its own generator, part of the training state) -> Linear. */
class Net extends T.Module {
  readonly l1: InstanceType<typeof Linear>;
  readonly drop: InstanceType<typeof Dropout>;
  readonly l2: InstanceType<typeof Linear>;
  constructor(
    init: T.Generator,
    readonly dropoutGen: T.Generator,
  ) {
    super();
    this.l1 = this.addModule('l1', new Linear(5, 16, { generator: init }));
    this.drop = this.addModule('drop', new Dropout(0.3, dropoutGen));
    this.l2 = this.addModule('l2', new Linear(16, 3, { generator: init }));
  }
  forward(x: T.Tensor): T.Tensor {
    return this.l2.forward(this.drop.forward(T.relu(this.l1.forward(x))));
  }
}

interface Run {
  net: Net;
  opt: T.AdamW;
  ema: T.EMA;
}

function makeRun(initSeed: number, dropoutSeed: number): Run {
  const net = new Net(new T.Generator(initSeed), new T.Generator(dropoutSeed));
  const opt = new T.AdamW(
    [{ params: [net.l1.weight, net.l1.bias!] }, { params: [net.l2.weight, net.l2.bias!], lr: 4e-2 }],
    {
      lr: 1e-2,
      weightDecay: 0.05,
    },
  );
  return { net, opt, ema: new T.EMA(net, { decay: 0.9, warmup: true }) };
}

const schedule = T.optim.warmupCosineLR({ baseLr: 1e-2, warmupSteps: 3, totalSteps: 12 });

/** One training step; the batch depends only on the step index, dropout on the model's generator. */
function trainStep({ net, opt, ema }: Run, step: number): void {
  T.tidy(() => {
    const data = new T.Generator(1000 + step);
    const x = T.randn([8, 5], { generator: data });
    const y = T.randn([8, 3], { generator: data });
    opt.lr = schedule(step);
    opt.zeroGrad();
    T.mean(T.square(T.sub(net.forward(x), y))).backward();
    T.clipGradNorm(net.parameters(), 0.5);
    opt.step();
    ema.update();
  });
}

async function snapshot({ net, opt, ema }: Run): Promise<number[][]> {
  const tensors = [...net.parameters(), ...opt.stateDict().tensors.values(), ...ema.stateDict().tensors.values()];
  return Promise.all(tensors.map(async (t) => Array.from(await t.data())));
}

describe('checkpoints', () => {
  it('resume is bit-for-bit: N steps, save, M steps == load into fresh objects, M steps', async () => {
    const dir = join(root, 'resume');
    const N = 4;
    const M = 5;
    const a = makeRun(1, 7);
    for (let s = 0; s < N; s++) trainStep(a, s);
    await T.saveCheckpoint(dir, {
      model: a.net,
      optimizer: a.opt,
      ema: a.ema,
      extra: { step: N, generator: a.net.dropoutGen.getState() },
    });
    for (let s = N; s < N + M; s++) trainStep(a, s);
    const expected = await snapshot(a);

    expect(readdirSync(dir).sort()).toEqual([
      'ema.safetensors',
      'model.safetensors',
      'optimizer.safetensors',
      'state.json',
    ]);
    const b = makeRun(2, 99);
    const extra = (await T.loadCheckpoint(dir, { model: b.net, optimizer: b.opt, ema: b.ema })) as {
      step: number;
      generator: { seed: number; offset: number };
    };
    b.net.dropoutGen.setState(extra.generator);
    for (let s = extra.step; s < extra.step + M; s++) trainStep(b, s);
    expect(await snapshot(b)).toEqual(expected);
    expect(b.opt.stateDict().meta.steps).toEqual({ 0: N + M, 1: N + M, 2: N + M, 3: N + M });

    // Control: the same resume without the generator state diverges (dropout masks differ), so the
    // comparison above is sensitive to every piece of state.
    const c = makeRun(3, 99);
    await T.loadCheckpoint(dir, { model: c.net, optimizer: c.opt, ema: c.ema });
    for (let s = N; s < N + M; s++) trainStep(c, s);
    expect(await snapshot(c)).not.toEqual(expected);
  });

  it('EMA weights load straight into a model', async () => {
    const dir = join(root, 'ema-weights');
    const run = makeRun(4, 5);
    for (let s = 0; s < 3; s++) trainStep(run, s);
    await T.saveCheckpoint(dir, { model: run.net, ema: run.ema });
    const fresh = new Net(new T.Generator(8), new T.Generator(9));
    fresh.loadStateDict(await T.loadSafetensors(join(dir, 'ema.safetensors')));
    expect(Array.from(await fresh.l2.weight.data())).toEqual(
      Array.from(await run.ema.stateDict().tensors.get('l2.weight')!.data()),
    );
  });

  it('a failed save leaves the previous checkpoint untouched and no temporary files', async () => {
    const dir = join(root, 'atomic');
    const run = makeRun(5, 6);
    await T.saveCheckpoint(dir, { model: run.net, optimizer: run.opt, extra: { step: 0 } });
    const before = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
    trainStep(run, 0);
    // Break the optimizer state after the model file would have been written into the temporary directory.
    run.opt.stateDict().tensors.get('state.3.exp_avg')!.dispose();
    await expect(T.saveCheckpoint(dir, { model: run.net, optimizer: run.opt, extra: { step: 1 } })).rejects.toThrow(
      /used after dispose/,
    );
    const after = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
    expect(after).toEqual(before);
    expect(readdirSync(root).filter((f) => f.startsWith('atomic'))).toEqual(['atomic']);
    await expect(T.saveCheckpoint(dir, { model: run.net, extra: { bad: 1n } })).rejects.toThrow(
      'saveCheckpoint: extra is not JSON-serialisable',
    );
    expect((JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { extra: unknown }).extra).toEqual({
      step: 0,
    });
  });

  it('falls back to <dir>.previous when a save was interrupted between its renames', async () => {
    const dir = join(root, 'interrupted');
    const run = makeRun(6, 7);
    await T.saveCheckpoint(dir, { model: run.net, extra: { step: 42 } });
    renameSync(dir, `${dir}.previous`);
    const fresh = makeRun(8, 9);
    expect(await T.loadCheckpoint(dir, { model: fresh.net })).toEqual({ step: 42 });
    expect(Array.from(await fresh.net.l1.bias!.data())).toEqual(Array.from(await run.net.l1.bias!.data()));
    // The next save completes the swap and removes the stale copy.
    await T.saveCheckpoint(dir, { model: run.net, extra: { step: 43 } });
    expect(existsSync(`${dir}.previous`)).toBe(false);
    expect(await T.loadCheckpoint(dir, { model: fresh.net })).toEqual({ step: 43 });
  });

  it('refuses to replace a directory that is not a checkpoint and reports missing parts', async () => {
    const notCkpt = join(root, 'user-data');
    mkdirSync(notCkpt);
    writeFileSync(join(notCkpt, 'notes.txt'), 'keep me');
    const run = makeRun(1, 2);
    await expect(T.saveCheckpoint(notCkpt, { model: run.net })).rejects.toThrow(
      /is not a checkpoint \(no state.json\); refusing to replace it/,
    );
    expect(readFileSync(join(notCkpt, 'notes.txt'), 'utf8')).toBe('keep me');
    await expect(T.loadCheckpoint(notCkpt, { model: run.net })).rejects.toThrow(
      /is not a checkpoint \(no state.json\)/,
    );

    const dir = join(root, 'model-only');
    await T.saveCheckpoint(dir, { model: run.net });
    await expect(T.loadCheckpoint(dir, { model: run.net, optimizer: run.opt })).rejects.toThrow(
      /holds no optimizer state \(optimizer.safetensors\)/,
    );
    const other = new Linear(5, 16);
    await expect(T.loadCheckpoint(dir, { model: other })).rejects.toThrow(/loadStateDict\(Linear\): \d+ problem\(s\)/);
  });

  it('loads a checkpoint served over HTTP (the browser path) exactly as from its folder', async () => {
    const run = makeRun(5, 6);
    for (let step = 0; step < 3; step++) trainStep(run, step);
    const dir = join(root, 'served');
    await T.saveCheckpoint(dir, { model: run.net, optimizer: run.opt, ema: run.ema, extra: { step: 3 } });
    const server = createServer((req, res) => {
      const file = join(root, decodeURIComponent(req.url ?? '/'));
      if (!existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200).end(readFileSync(file));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const opened = await T.openCheckpointUrl(`${base}/served/`);
      expect(opened.extra).toEqual({ step: 3 });
      const fromUrl = makeRun(9, 9);
      const fromDir = makeRun(9, 9);
      await opened.load({ model: fromUrl.net, optimizer: fromUrl.opt, ema: fromUrl.ema });
      await T.loadCheckpoint(dir, { model: fromDir.net, optimizer: fromDir.opt, ema: fromDir.ema });
      const x = T.randn([4, 5], { generator: new T.Generator(3) });
      fromUrl.net.eval();
      fromDir.net.eval();
      expect(await fromUrl.net.forward(x).data()).toEqual(await fromDir.net.forward(x).data());
      // Training continues identically: the optimizer state came over too.
      fromUrl.net.train();
      fromDir.net.train();
      trainStep(fromUrl, 3);
      trainStep(fromDir, 3);
      expect(await fromUrl.net.l2.weight.data()).toEqual(await fromDir.net.l2.weight.data());
      await expect(T.openCheckpointUrl(`${base}/missing`)).rejects.toThrow(
        /fetching '.*\/missing\/state.json' failed \(HTTP 404/,
      );
    } finally {
      server.close();
    }
  });

  it('malformed state.json and optimizer metadata give errors naming the file', async () => {
    const run = makeRun(2, 3);
    trainStep(run, 0);
    const dir = join(root, 'malformed');
    await T.saveCheckpoint(dir, { model: run.net, optimizer: run.opt, ema: run.ema, extra: { step: 1 } });
    const state = join(dir, 'state.json');
    const good = readFileSync(state, 'utf8');
    const stateCases: [string, RegExp][] = [
      ['{"format": ', /'.*malformed\/state\.json' is not valid JSON \(.*\); the checkpoint is damaged/],
      ['null', /'.*malformed\/state\.json' holds null, expected a leffa-webgpu-checkpoint object/],
      ['[1]', /'.*malformed\/state\.json' holds an array/],
      [
        '{"format": "other", "version": 1}',
        /'.*malformed\/state\.json' is not a leffa-webgpu-checkpoint v1 file \(format "other", version 1\)/,
      ],
      [
        good.replace(/"files": \[[^\]]*\]/, '"files": "model.safetensors"'),
        /'.*malformed\/state\.json' has files "model\.safetensors", expected a list of file names/,
      ],
    ];
    for (const [text, message] of stateCases) {
      writeFileSync(state, text);
      await expect(T.loadCheckpoint(dir, { model: run.net }), text).rejects.toThrow(message);
    }
    writeFileSync(state, good);

    // The optimizer's JSON state lives in optimizer.safetensors' metadata.
    const optFile = join(dir, 'optimizer.safetensors');
    const original = T.readSafetensors(new Uint8Array(readFileSync(optFile)));
    const meta = JSON.parse(original.metadata.state!) as Record<string, unknown>;
    const rewrite = (stateText: string) => {
      const entries = Object.fromEntries([...original.tensors].map(([n, t]) => [n, { shape: t.shape, data: t.data }]));
      writeFileSync(optFile, T.serializeSafetensors(entries, { state: stateText }));
    };
    const metaCases: [string, RegExp][] = [
      ['{not json', /'.*malformed\/optimizer\.safetensors': its 'state' metadata is not valid JSON/],
      [
        'null',
        /'.*malformed\/optimizer\.safetensors': AdamW\.loadStateDict: malformed optimizer state: expected an object \{type, groups, steps\}, got null/,
      ],
      [
        JSON.stringify({ ...meta, groups: 3 }),
        /'.*malformed\/optimizer\.safetensors': AdamW\.loadStateDict: malformed optimizer state: groups is 3, expected a list/,
      ],
      [
        JSON.stringify({ ...meta, steps: null }),
        /malformed optimizer state: steps is null, expected an object of step counts/,
      ],
      [
        JSON.stringify({ ...meta, groups: [{ lr: 1 }, { lr: 1 }] }),
        /malformed optimizer state: group 0 is \{"lr":1\}, expected an object with a params list/,
      ],
    ];
    for (const [text, message] of metaCases) {
      rewrite(text);
      await expect(T.loadCheckpoint(dir, { model: run.net, optimizer: run.opt }), text).rejects.toThrow(message);
    }
    const emaFile = join(dir, 'ema.safetensors');
    const ema = T.readSafetensors(new Uint8Array(readFileSync(emaFile)));
    writeFileSync(
      emaFile,
      T.serializeSafetensors(
        Object.fromEntries([...ema.tensors].map(([n, t]) => [n, { shape: t.shape, data: t.data }])),
        { state: 'null' },
      ),
    );
    await expect(T.loadCheckpoint(dir, { model: run.net, ema: run.ema })).rejects.toThrow(
      /'.*malformed\/ema\.safetensors': EMA\.loadStateDict: malformed EMA state: expected an object, got null/,
    );
  });

  it('refuses to save non-finite weights with requireFinite, keeping the checkpoint on disk', async () => {
    const dir = join(root, 'finite');
    const run = makeRun(3, 4);
    await T.saveCheckpoint(dir, { model: run.net, optimizer: run.opt, extra: { step: 1 }, requireFinite: true });
    const bias = run.net.l2.bias!;
    const poisoned = T.tensor([1, NaN, 2], [3]);
    bias.assign(poisoned);
    const sd = run.net.stateDict();
    const values = await sd.get('l2.bias')!.data();
    expect(Number.isNaN(values[1]!)).toBe(true);
    await expect(
      T.saveCheckpoint(dir, { model: run.net, optimizer: run.opt, extra: { step: 2 }, requireFinite: true }),
    ).rejects.toThrow(/tensor 'l2\.bias' has 1 of 3 values NaN or infinite; not written/);
    expect(await T.loadCheckpoint(dir, { model: makeRun(3, 4).net })).toEqual({ step: 1 });
    expect(readdirSync(root).filter((f) => f.startsWith('finite'))).toEqual(['finite']);
  });

  it('removes temporary folders of dead processes and failed saves, keeps those of live ones', async () => {
    const dir = join(root, 'stale');
    const run = makeRun(1, 1);
    await T.saveCheckpoint(dir, { model: run.net, extra: { step: 1 } });
    // A pid that is certainly dead: a child that has exited.
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    expect(T.processAlive(deadPid)).toBe(false);
    const dead = `${dir}.tmp-${deadPid}-1-aaaaaa`;
    const live = `${dir}.tmp-${process.ppid}-1-bbbbbb`;
    const mine = `${dir}.tmp-${process.pid}-1-cccccc`;
    const other = `${dir}x.tmp-${deadPid}-1-dddddd`; // another checkpoint's, not this one's
    for (const d of [dead, live, mine, other]) {
      mkdirSync(d);
      writeFileSync(join(d, 'model.safetensors'), new Uint8Array(1 << 20));
    }
    await T.saveCheckpoint(dir, { model: run.net, extra: { step: 2 } });
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(mine)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(other)).toBe(true);
    for (const d of [live, other]) rmSync(d, { recursive: true });
  });

  it('keeps one complete checkpoint on disk whichever file operation fails or the process dies at', async () => {
    // Every mutating file operation of a save is made to fail in turn: once (EIO; the save's own cleanup
    // runs), or for good (a SIGKILL: nothing after it reaches the disk). Starting from a complete checkpoint,
    // from one a crash left only at <dir>.previous, or from nothing.
    type Mode = 'eio' | 'kill';
    const faulty = (failAt: number, mode: Mode) => {
      let ops = 0;
      let dead = false;
      const hit = (what: string) => {
        if (dead) throw Object.assign(new Error(`process killed (before ${what})`), { code: 'EKILLED' });
        if (ops++ === failAt) {
          if (mode === 'kill') dead = true;
          throw Object.assign(new Error(`EIO: injected fault at ${what}`), { code: 'EIO' });
        }
      };
      const alive = () => {
        if (dead) throw Object.assign(new Error('process killed'), { code: 'EKILLED' });
      };
      const fs: T.FileSystem = {
        stat: (async (...a: Parameters<typeof fsp.stat>) => (alive(), fsp.stat(...a))) as typeof fsp.stat,
        readdir: (async (...a: Parameters<typeof fsp.readdir>) => (alive(), fsp.readdir(...a))) as typeof fsp.readdir,
        readFile: (async (...a: Parameters<typeof fsp.readFile>) => (
          alive(), fsp.readFile(...a)
        )) as typeof fsp.readFile,
        mkdir: (async (...a: Parameters<typeof fsp.mkdir>) => (
          hit(`mkdir ${a[0]}`), fsp.mkdir(...a)
        )) as typeof fsp.mkdir,
        rm: (async (...a: Parameters<typeof fsp.rm>) => (hit(`rm ${a[0]}`), fsp.rm(...a))) as typeof fsp.rm,
        rename: (async (...a: Parameters<typeof fsp.rename>) => (
          hit(`rename ${a[0]} ${a[1]}`), fsp.rename(...a)
        )) as typeof fsp.rename,
        open: (async (path: string, flags?: string) => {
          if (flags === 'r') alive();
          else hit(`open ${path}`);
          const h = await fsp.open(path, flags);
          return Object.assign(Object.create(h) as typeof h, {
            writeFile: async (data: Uint8Array | string) => {
              hit(`write ${path}`);
              // A failing write may leave part of the data behind.
              await h.writeFile(data);
            },
            sync: async () => {
              hit(`sync ${path}`);
              await h.sync();
            },
            close: () => h.close(),
          });
        }) as typeof fsp.open,
      };
      return { fs, ops: () => ops };
    };

    const oldRun = makeRun(11, 1);
    const newRun = makeRun(12, 1);
    const bias = async (r: Run) => Array.from(await r.net.l1.bias!.data());
    const want = { 1: await bias(oldRun), 2: await bias(newRun) } as Record<number, number[]>;
    const save = (dir: string, step: number, fs?: T.FileSystem) => {
      const r = step === 1 ? oldRun : newRun;
      return T.saveCheckpoint(dir, { model: r.net, optimizer: r.opt, extra: { step }, ...(fs ? { fs } : {}) });
    };
    /** The step of what loads from `dir` (null: nothing loadable), checking the weights match that step. */
    const loadable = async (dir: string): Promise<number | null> => {
      const probe = makeRun(13, 1);
      let extra: { step: number };
      try {
        extra = (await T.loadCheckpoint(dir, { model: probe.net, optimizer: probe.opt })) as { step: number };
      } catch (e) {
        expect((e as Error).message).toMatch(/is not a checkpoint \(no state.json\)/);
        return null;
      }
      expect(await bias(probe), `weights of step ${extra.step} in ${dir}`).toEqual(want[extra.step]);
      return extra.step;
    };

    const counted = faulty(Infinity, 'eio');
    const probeDir = join(root, 'fault-count');
    await save(probeDir, 1);
    await save(probeDir, 2, counted.fs);
    const total = counted.ops();
    expect(total).toBeGreaterThan(12);

    let n = 0;
    for (const start of ['complete', 'previous-only', 'none'] as const) {
      for (const mode of ['eio', 'kill'] as const) {
        for (let k = 0; k < total + 2; k++) {
          const base = join(root, `fault-${n++}`);
          mkdirSync(base);
          const dir = join(base, 'checkpoint');
          if (start !== 'none') await save(dir, 1);
          if (start === 'previous-only') renameSync(dir, `${dir}.previous`);
          const f = faulty(k, mode);
          await save(dir, 2, f.fs).catch((e: Error) => expect(e.message).toMatch(/injected fault|process killed/));
          const got = await loadable(dir);
          const label = `${start}, ${mode} at operation ${k}`;
          if (start === 'none') expect([null, 2], label).toContain(got);
          else expect([1, 2], label).toContain(got);
          // The next save (a restarted run) works, and leaves nothing else behind.
          await save(dir, 2);
          expect(await loadable(dir), label).toBe(2);
          expect(readdirSync(base), label).toEqual(['checkpoint']);
        }
      }
    }
  });
});
