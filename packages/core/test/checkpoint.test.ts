import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
  constructor(init: T.Generator, readonly dropoutGen: T.Generator) {
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
  const opt = new T.AdamW([{ params: [net.l1.weight, net.l1.bias!] }, { params: [net.l2.weight, net.l2.bias!], lr: 4e-2 }], {
    lr: 1e-2,
    weightDecay: 0.05,
  });
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
    await T.saveCheckpoint(dir, { model: a.net, optimizer: a.opt, ema: a.ema, extra: { step: N, generator: a.net.dropoutGen.getState() } });
    for (let s = N; s < N + M; s++) trainStep(a, s);
    const expected = await snapshot(a);

    expect(readdirSync(dir).sort()).toEqual(['ema.safetensors', 'model.safetensors', 'optimizer.safetensors', 'state.json']);
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
    expect(Array.from(await fresh.l2.weight.data())).toEqual(Array.from(await run.ema.stateDict().tensors.get('l2.weight')!.data()));
  });

  it('a failed save leaves the previous checkpoint untouched and no temporary files', async () => {
    const dir = join(root, 'atomic');
    const run = makeRun(5, 6);
    await T.saveCheckpoint(dir, { model: run.net, optimizer: run.opt, extra: { step: 0 } });
    const before = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
    trainStep(run, 0);
    // Break the optimizer state after the model file would have been written into the temporary directory.
    run.opt.stateDict().tensors.get('state.3.exp_avg')!.dispose();
    await expect(T.saveCheckpoint(dir, { model: run.net, optimizer: run.opt, extra: { step: 1 } })).rejects.toThrow(/used after dispose/);
    const after = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
    expect(after).toEqual(before);
    expect(readdirSync(root).filter((f) => f.startsWith('atomic'))).toEqual(['atomic']);
    await expect(T.saveCheckpoint(dir, { model: run.net, extra: { bad: 1n } })).rejects.toThrow(
      'saveCheckpoint: extra is not JSON-serialisable',
    );
    expect((JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { extra: unknown }).extra).toEqual({ step: 0 });
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
    await expect(T.saveCheckpoint(notCkpt, { model: run.net })).rejects.toThrow(/is not a checkpoint \(no state.json\); refusing to replace it/);
    expect(readFileSync(join(notCkpt, 'notes.txt'), 'utf8')).toBe('keep me');
    await expect(T.loadCheckpoint(notCkpt, { model: run.net })).rejects.toThrow(/is not a checkpoint \(no state.json\)/);

    const dir = join(root, 'model-only');
    await T.saveCheckpoint(dir, { model: run.net });
    await expect(T.loadCheckpoint(dir, { model: run.net, optimizer: run.opt })).rejects.toThrow(/holds no optimizer state \(optimizer.safetensors\)/);
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
      await expect(T.openCheckpointUrl(`${base}/missing`)).rejects.toThrow(/fetching '.*\/missing\/state.json' failed \(HTTP 404/);
    } finally {
      server.close();
    }
  });
});
