import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainVae } from '../src/cli/train-vae.js';
import { RunGuard, lockRunFolder } from '../src/cli/run-guard.js';
import {
  declaredSize,
  decodeImage,
  decodeLabelPng,
  decodePng,
  DEFAULT_MAX_PIXELS,
  encodeJpeg,
  encodePng,
  setDefaultMaxPixels,
} from '@leffa-webgpu/data';
import { smallLeffaRun } from './small-leffa-run.js';
import { runCli } from './run-cli.js';

/** One PNG chunk: length, type, body and the CRC-32 of type and body. */
function pngChunk(type: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(T.crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const tmp = mkdtempSync(join(tmpdir(), 'hardening-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = runCli;

/** A PNG declaring width x height whose pixel data is a few compressed rows of zeros (a decompression bomb). */
function pngBomb(width: number, height: number): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return new Uint8Array(
    Buffer.concat([
      PNG_SIGNATURE,
      pngChunk('IHDR', ihdr),
      pngChunk('IDAT', deflateSync(Buffer.alloc(1 << 20))),
      pngChunk('IEND', Buffer.alloc(0)),
    ]),
  );
}

/** A real JPEG whose frame header (SOF0) is patched to declare width x height. */
function jpegBomb(width: number, height: number): Uint8Array {
  const bytes = encodeJpeg({ width: 8, height: 8, data: new Uint8Array(8 * 8 * 3).fill(128) });
  const sof = Buffer.from(bytes).indexOf(Buffer.from([0xff, 0xc0]));
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  view.setUint16(sof + 5, height);
  view.setUint16(sof + 7, width);
  return bytes;
}

describe('image decompression bombs', () => {
  it('reads the declared size from PNG and JPEG headers', () => {
    expect(declaredSize(pngBomb(12000, 12000))).toEqual({ width: 12000, height: 12000 });
    expect(declaredSize(jpegBomb(9000, 7000))).toEqual({ width: 9000, height: 7000 });
    expect(declaredSize(encodePng({ width: 3, height: 2, data: new Uint8Array(18) }))).toEqual({ width: 3, height: 2 });
    expect(declaredSize(new Uint8Array([1, 2, 3]))).toBeNull();
  });

  it('refuses a small file declaring 12000x12000 before decoding it, in every decoder', () => {
    const png = pngBomb(12000, 12000);
    expect(png.byteLength).toBeLessThan(10_000);
    const message =
      /bomb: the image declares 12000x12000 pixels \(144\.0 megapixels\), over the limit of 50\.0 megapixels; not decoded .*raise the limit with --max-pixels/;
    expect(() => decodeImage(png, 'bomb')).toThrow(message);
    expect(() => decodePng(png, 'bomb')).toThrow(message);
    expect(() => decodeLabelPng(png, 'bomb')).toThrow(message);
    expect(() => decodeImage(jpegBomb(12000, 12000), 'bomb')).toThrow(message);
    expect(() => decodeImage(pngBomb(0, 10), 'empty')).toThrow(/empty: the image declares 0x10 pixels, an empty image/);
  });

  it('the limit is an option: per call (maxPixels) and as the default (the CLI flag --max-pixels)', () => {
    expect(DEFAULT_MAX_PIXELS).toBe(50_000_000);
    const img = { width: 100, height: 80, data: new Uint8Array(100 * 80 * 3).fill(7) };
    const png = encodePng(img);
    expect(decodeImage(png, 'ok').data).toEqual(img.data);
    expect(() => decodeImage(png, 'small', { maxPixels: 7999 })).toThrow(
      /small: the image declares 100x80 pixels \(0\.0 megapixels\), over the limit of 0\.0 megapixels/,
    );
    expect(decodeImage(png, 'exact', { maxPixels: 8000 }).width).toBe(100);
    const jpeg = encodeJpeg(img);
    expect(() => decodeImage(jpeg, 'small.jpg', { maxPixels: 7999 })).toThrow(
      /small\.jpg: the image declares 100x80 pixels/,
    );
    const before = setDefaultMaxPixels(5000);
    try {
      expect(() => decodeImage(png, 'default')).toThrow(/default: the image declares 100x80 pixels/);
    } finally {
      setDefaultMaxPixels(before);
    }
    expect(decodeImage(png, 'restored').height).toBe(80);
  });

  it('tryon refuses the bomb with a non-zero exit', async () => {
    const bomb = join(tmp, 'bomb.png');
    writeFileSync(bomb, pngBomb(12000, 12000));
    const run = await cli('tryon', '--person', 'synthetic:0', '--garment', bomb, '--out', join(tmp, 'tryon.png'));
    expect(run.code).toBe(1);
    expect(run.output).toMatch(
      /bomb\.png: the image declares 12000x12000 pixels \(144\.0 megapixels\), over the limit of 50\.0 megapixels/,
    );
    expect(existsSync(join(tmp, 'tryon.png'))).toBe(false);
  });
});

describe('CLI numeric options', () => {
  it('refuses NaN, non-numbers and out-of-range values before any work, naming the option', async () => {
    const out = join(tmp, 'cli-run');
    const cases: [string[], RegExp][] = [
      [
        ['train', '--leffa-weight', 'nan'],
        /option '--leffa-weight <w>' argument 'nan' is invalid\. expected a finite number >= 0, got 'nan'/,
      ],
      [
        ['tryon', '--person', 'synthetic:0', '--guidance', 'abc'],
        /option '--guidance <s>' argument 'abc' is invalid\. expected a finite number >= 0/,
      ],
      [['train', '--pool', '0'], /option '--pool <n>' argument '0' is invalid\. expected an integer >= 1, got '0'/],
      [
        ['train-schp', '--lr', '1e999'],
        /option '--lr <lr>' argument '1e999' is invalid\. expected a finite number > 0/,
      ],
      [
        ['eval', '--guidance', '-1'],
        /option '--guidance <s>' argument '-1' is invalid\. expected a finite number >= 0/,
      ],
      [
        ['eval', '--seeds', '0,1.5'],
        /option '--seeds <list>' argument '0,1\.5' is invalid\. expected an integer >= 0, got '1\.5'/,
      ],
      [
        ['eval', '--task', 'tryon', '--ckpt', 'shipped:leffa-tiny-pose'],
        /eval: 'shipped:leffa-tiny-pose' was trained for pose; --task tryon would score it on tryon examples/,
      ],
      [['train', '--size', '0x96'], /--size expects HxW with positive integers \(e\.g\. 128x96\), got '0x96'/],
      [['train', '--scaling-factor', '0'], /--scaling-factor expects a positive number or 'unit', got '0'/],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(...args, '--out', out)));
    runs.forEach((run, i) => {
      expect(run.code, cases[i]![0].join(' ')).toBe(1);
      expect(run.output, cases[i]![0].join(' ')).toMatch(cases[i]![1]);
    });
    expect(existsSync(out)).toBe(false);
  });
});

describe('run folders', () => {
  it('one run per folder: a live owner refuses the second, a dead one is taken over, release frees it', async () => {
    const out = join(tmp, 'locked');
    const lock = await lockRunFolder(out, 'train');
    expect(JSON.parse(readFileSync(join(out, '.lock'), 'utf8')).pid).toBe(process.pid);
    await expect(lockRunFolder(out, 'train')).rejects.toThrow(
      /train: the output folder '.*locked' is in use by this process; lock file .*\.lock/,
    );
    await lock.release();
    expect(existsSync(join(out, '.lock'))).toBe(false);

    // Another live process (our parent) holds it.
    writeFileSync(
      join(out, '.lock'),
      JSON.stringify({ pid: process.ppid, command: 'train', started: '2024-01-01T00:00:00Z' }),
    );
    await expect(lockRunFolder(out, 'train-vae')).rejects.toThrow(
      new RegExp(
        `train-vae: the output folder '.*locked' is in use by another run \\(PID ${process.ppid}, train, since 2024-01-01T00:00:00Z\\); lock file .*Two runs writing one folder would replace each other's checkpoints`,
      ),
    );
    // The same refusal stops a training run before it does anything.
    await expect(
      trainVae({ out, steps: 1, batch: 1, height: 32, width: 32, lr: 1e-3, seed: 0, saveEvery: 1 }),
    ).rejects.toThrow(/is in use by another run/);
    expect(readdirSync(out)).toEqual(['.lock']);

    // Its process is gone: taken over.
    const dead = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['-e', '0']);
      child.on('close', () => resolve(child.pid!));
    });
    writeFileSync(join(out, '.lock'), JSON.stringify({ pid: dead, command: 'train' }));
    const taken = await lockRunFolder(out, 'train');
    expect(JSON.parse(readFileSync(join(out, '.lock'), 'utf8')).pid).toBe(process.pid);
    await taken.release();
    expect(readdirSync(out)).toEqual([]);
  });

  it('RunGuard names the step and the last good checkpoint', async () => {
    const guard = new RunGuard('train', { step: 100, where: 'runs/a/checkpoint' });
    guard.check(110, { total: 0.5, leffa: 0 });
    expect(() => guard.check(120, { total: NaN, leffa: Infinity })).toThrow(
      'train: the loss turned non-finite at step 120 (total NaN, leffa Infinity); stopped without saving. The last good checkpoint, from step 100, is kept at runs/a/checkpoint; resume from it with a lower --lr.',
    );
    await guard.save(130, 'runs/b/checkpoint', async () => undefined);
    expect(() => guard.check(140, { total: -Infinity })).toThrow(
      /at step 140 .*from step 130, is kept at runs\/b\/checkpoint/,
    );
    await expect(
      guard.save(150, 'x', () => Promise.reject(new T.NonFiniteError('bad', 'conv.weight'))),
    ).rejects.toThrow(
      /train: the weights turned non-finite by step 150 \(tensor 'conv\.weight'\); stopped without saving\. The last good checkpoint, from step 130/,
    );
    await expect(guard.save(160, 'x', () => Promise.reject(new Error('disk full')))).rejects.toThrow(/^disk full$/);
    expect(() => new RunGuard('train-vae').check(10, { loss: NaN })).toThrow(/No checkpoint had been saved yet\./);
  });
});

describe('training runs', () => {
  beforeAll(async () => {
    await T.init();
  });

  it('--init starts a new run from a VAE checkpoint: its shape, colour weight and weights, step 0', async () => {
    const first = join(tmp, 'vae-first');
    const base = { batch: 2, height: 32, width: 32, seed: 0, saveEvery: 2 };
    await trainVae({
      ...base,
      out: first,
      steps: 2,
      lr: 1e-3,
      blockChannels: [16, 32],
      latentChannels: 8,
      chromaWeight: 0.5,
    });
    const next = join(tmp, 'vae-next');
    // Options that would build another VAE are overridden by the checkpoint's; the tiny learning rate keeps the weights.
    await trainVae({ ...base, out: next, steps: 2, lr: 1e-12, latentChannels: 4, init: join(first, 'checkpoint') });
    const state = (dir: string) =>
      JSON.parse(readFileSync(join(dir, 'checkpoint', 'state.json'), 'utf8')).extra as {
        step: number;
        chromaWeight: number;
        config: { blockOutChannels: number[]; latentChannels: number };
      };
    expect(state(next).step).toBe(2);
    expect(state(next).chromaWeight).toBe(0.5);
    expect(state(next).config).toEqual(state(first).config);
    const weights = async (dir: string) =>
      (await T.loadSafetensors(join(dir, 'checkpoint', 'model.safetensors'))).get('encoder.conv_in.weight')!.data();
    const [a, b] = await Promise.all([weights(first), weights(next)]);
    expect(Math.max(...a.map((x, i) => Math.abs(x - b[i]!)))).toBeLessThan(1e-8);
    await expect(
      trainVae({
        ...base,
        out: join(tmp, 'vae-both'),
        steps: 1,
        lr: 1e-3,
        init: join(first, 'checkpoint'),
        resume: join(first, 'checkpoint'),
      }),
    ).rejects.toThrow(
      'train-vae: give --resume (continue a run) or --init (start a new one from its weights), not both',
    );
  });

  it('metrics survive a resume; a diverging run stops without replacing the good checkpoint; no leftovers', async () => {
    const out = join(tmp, 'vae');
    const base = { out, batch: 2, height: 32, width: 32, seed: 0 };
    await trainVae({ ...base, steps: 10, lr: 1e-3, saveEvery: 10 });
    await trainVae({ ...base, steps: 20, lr: 1e-3, saveEvery: 10, resume: join(out, 'checkpoint') });
    const state = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')) as {
      extra: { step: number; history: { step: number; reconstruction: number }[] };
    };
    expect(state.extra.step).toBe(20);
    // One entry per 10 steps, the first from before the resume.
    expect(state.extra.history).toHaveLength(2);
    expect(readdirSync(out).sort()).toEqual([
      'checkpoint',
      'loss.csv',
      'loss.svg',
      'metrics.json',
      'reconstructions.png',
    ]);
    // The curve continues across the resume: steps 10 and 20, the values of the checkpoint's history.
    expect(state.extra.history.map((h) => h.step)).toEqual([10, 20]);
    expect(readFileSync(join(out, 'loss.csv'), 'utf8')).toBe(
      `step,reconstruction\n10,${state.extra.history[0]!.reconstruction}\n20,${state.extra.history[1]!.reconstruction}\n`,
    );

    // A learning rate of 1e38 sends the weights to infinity at once: the save at step 5 is refused, the run
    // stops with the step, and the step-20 checkpoint of the run before stays.
    await expect(trainVae({ ...base, out, steps: 20, lr: 1e38, saveEvery: 5 })).rejects.toThrow(
      /train-vae: the weights turned non-finite by step 5 \(tensor '.*'\); stopped without saving\. No checkpoint had been saved yet\./,
    );
    // Logged before any save: the loss check stops it (at the first logged step).
    await expect(trainVae({ ...base, out: join(tmp, 'vae-nan'), steps: 20, lr: 1e38, saveEvery: 100 })).rejects.toThrow(
      /train-vae: the loss turned non-finite at step 10 \(reconstruction (NaN|Infinity)/,
    );
    expect(existsSync(join(tmp, 'vae-nan', 'checkpoint'))).toBe(false);
    const after = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')) as {
      extra: { step: number };
    };
    expect(after.extra.step).toBe(20);
    expect(readdirSync(out).sort()).toEqual([
      'checkpoint',
      'loss.csv',
      'loss.svg',
      'metrics.json',
      'reconstructions.png',
    ]);
  });
});

describe('train (Leffa) resume', () => {
  beforeAll(async () => {
    await T.init();
  });

  it('metrics.json after a resume holds the curve from before it', async () => {
    const { trainLeffa } = await import('../src/cli/train-leffa.js');
    const out = join(tmp, 'leffa');
    const args = { ...smallLeffaRun, out, pool: 2, init: 'shipped:leffa-tiny-tryon', saveEvery: 10 };
    await trainLeffa({ ...args, steps: 10 });
    await trainLeffa({ ...args, steps: 20, resume: join(out, 'checkpoint') });
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as {
      steps: number;
      history: { step: number }[];
    };
    expect(metrics.steps).toBe(20);
    expect(metrics.history.map((h) => h.step)).toEqual([10, 20]);
    expect(readdirSync(out).filter((f) => f.includes('.tmp') || f.includes('.previous') || f === '.lock')).toEqual([]);
  });
});

describe('train (Leffa) options', () => {
  it('--background-flow is refused where it has nothing to weigh: try-on, or no flow supervision', async () => {
    const { trainLeffa } = await import('../src/cli/train-leffa.js');
    const args = { ...smallLeffaRun, out: join(tmp, 'bg'), pool: 1, steps: 1, saveEvery: 1, vae: 'unused' };
    const message = /--background-flow .* needs --task pose, synthetic data and --flow-supervision > 0/;
    await expect(trainLeffa({ ...args, backgroundFlow: 0.25, flowSupervision: 1 })).rejects.toThrow(message);
    await expect(trainLeffa({ ...args, task: 'pose', backgroundFlow: 0.25 })).rejects.toThrow(message);
  });

  it('--mask-weight is refused for pose transfer, whose mask is the whole image', async () => {
    const { trainLeffa } = await import('../src/cli/train-leffa.js');
    const args = { ...smallLeffaRun, out: join(tmp, 'mw'), pool: 1, steps: 1, saveEvery: 1, vae: 'unused' };
    await expect(trainLeffa({ ...args, task: 'pose', maskWeight: 4 })).rejects.toThrow(
      /--mask-weight weighs the try-on's inpainting region; pose transfer regenerates the whole image \(got --task pose\)/,
    );
  });
});
