import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { AutoencoderKL, LEFFA_CONFIGS, LeffaModel, type VaeConfig } from '@leffa-webgpu/models';
import { generateSample } from '@leffa-webgpu/data';
import { leffaFrom, openCheckpointFolder } from '@leffa-webgpu/pipelines';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCheckpoint } from '../src/cli/export.js';
import { trainVae } from '../src/cli/train-vae.js';
import { VaeTrainer } from '../src/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'vae-decoder-'));
beforeAll(async () => {
  await T.init();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The tiny config at two levels (4x downsampling), as the shipped models' VAE. */
const SMALL: VaeConfig = { ...LEFFA_CONFIGS.tiny.vae, blockOutChannels: [8, 16], latentChannels: 4 };
const WIDE: VaeConfig = { ...SMALL, decoderBlockOutChannels: [16, 24] };

const snapshot = async (m: T.Module, prefix: string) =>
  new Map(
    await Promise.all(
      [...m.stateDict()]
        .filter(([k]) => k.startsWith(prefix))
        .map(async ([k, t]) => [k, Float32Array.from(await t.data())] as const),
    ),
  );

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
};

describe('a VAE decoder with its own channels', () => {
  it('builds the decoder at decoderBlockOutChannels and keeps the encoder and its keys', () => {
    const vae = new AutoencoderKL(WIDE);
    const dict = vae.stateDict();
    expect(dict.get('decoder.conv_in.weight')!.shape).toEqual([24, 4, 3, 3]);
    expect(dict.get('decoder.conv_out.weight')!.shape).toEqual([3, 16, 3, 3]);
    expect(dict.get('encoder.conv_in.weight')!.shape).toEqual([8, 3, 3, 3]);
    expect(new AutoencoderKL(SMALL).stateDict().get('decoder.conv_in.weight')!.shape).toEqual([16, 4, 3, 3]);
    const x = T.rand([1, 3, 16, 12]);
    const y = T.noGrad(() => vae.decode(vae.encode(x).mode()));
    expect(y.shape).toEqual([1, 3, 16, 12]);
    T.dispose([x, y, ...vae.parameters()]);
  });

  it('refuses decoder channels with another number of levels or that the groups do not divide', () => {
    expect(() => new AutoencoderKL({ ...SMALL, decoderBlockOutChannels: [16, 24, 24] })).toThrow(
      /decoderBlockOutChannels \[16,24,24\] must have 2 levels like blockOutChannels \[8,16\]/,
    );
    expect(() => new AutoencoderKL({ ...SMALL, decoderBlockOutChannels: [16, 20] })).toThrow(
      /multiple of normNumGroups 8/,
    );
  });

  it('decoderOnly trains the decoder and post_quant_conv and leaves the encoder as it was', async () => {
    T.manualSeed(4);
    const trainer = new VaeTrainer({ config: WIDE, seed: 1, lr: 1e-2, decoderOnly: true });
    const before = { enc: await snapshot(trainer.vae, 'encoder.'), dec: await snapshot(trainer.vae, 'decoder.') };
    const quantBefore = await snapshot(trainer.vae, 'quant_conv.');
    const postBefore = await snapshot(trainer.vae, 'post_quant_conv.');
    const images = [0, 1].map((s) => generateSample({ seed: 70 + s, height: 16, width: 12 }).garment);
    T.dispose(trainer.step(images, 16, 12));
    const after = { enc: await snapshot(trainer.vae, 'encoder.'), dec: await snapshot(trainer.vae, 'decoder.') };
    for (const [k, v] of before.enc) expect(maxDiff(after.enc.get(k)!, v), k).toBe(0);
    for (const [k, v] of quantBefore) expect(maxDiff((await snapshot(trainer.vae, 'quant_conv.')).get(k)!, v)).toBe(0);
    const moved = [...before.dec].filter(([k, v]) => maxDiff(after.dec.get(k)!, v) > 0).length;
    expect(moved).toBe(before.dec.size);
    for (const [k, v] of postBefore)
      expect(maxDiff((await snapshot(trainer.vae, 'post_quant_conv.')).get(k)!, v)).toBeGreaterThan(0);
    T.dispose(trainer.vae.parameters());
  });

  it('train-vae --init --decoder-channels keeps the encoder, starts a new decoder and records both', async () => {
    const first = join(tmp, 'vae');
    const common = { steps: 2, batch: 2, height: 16, width: 12, lr: 1e-3, seed: 0, saveEvery: 100 };
    await trainVae({ ...common, out: first, blockChannels: [8, 16], latentChannels: 4 });
    const second = join(tmp, 'vae-wide');
    await trainVae({
      ...common,
      out: second,
      init: join(first, 'checkpoint'),
      decoderChannels: [16, 24],
      decoderOnly: true,
    });
    const extra = JSON.parse(readFileSync(join(second, 'checkpoint', 'state.json'), 'utf8')).extra;
    expect(extra.config.decoderBlockOutChannels).toEqual([16, 24]);
    expect(extra.decoderOnly).toBe(true);
    const [a, b] = [
      new AutoencoderKL(extra.config),
      new AutoencoderKL({ ...extra.config, decoderBlockOutChannels: undefined }),
    ];
    await (await T.openCheckpoint(join(second, 'checkpoint'))).load({ model: a });
    await (await T.openCheckpoint(join(first, 'checkpoint'))).load({ model: b });
    const [ea, eb] = [await snapshot(a, 'encoder.'), await snapshot(b, 'encoder.')];
    for (const [k, v] of eb) expect(maxDiff(ea.get(k)!, v), k).toBe(0);
    T.dispose([...a.parameters(), ...b.parameters()]);
    await expect(
      trainVae({ ...common, out: join(tmp, 'no-init'), decoderOnly: true, blockChannels: [8, 16] }),
    ).rejects.toThrow(/--decoder-only trains a decoder for an existing encoder: give --init/);
  });

  it('export --decoder-from puts the decoder into a Leffa model whose encoder it was trained for, and refuses others', async () => {
    T.manualSeed(8);
    const config = { ...LEFFA_CONFIGS.tiny, vae: { ...SMALL, scalingFactor: 0.5 } };
    const leffa = new LeffaModel(config);
    const src = join(tmp, 'leffa');
    await T.saveCheckpoint(src, { model: leffa, extra: { kind: 'leffa', config, task: 'tryon', size: [16, 12] } });
    // A decoder-only run's checkpoint: the Leffa VAE's encoder, a wider decoder of its own.
    const wide = new AutoencoderKL({ ...WIDE, scalingFactor: 0.18215 });
    wide.loadStateDict(new Map([...leffa.vae.stateDict()].filter(([k]) => !k.startsWith('decoder.'))), {
      strict: false,
    });
    const decoderRun = join(tmp, 'decoder-run');
    await T.saveCheckpoint(decoderRun, { model: wide, extra: { config: wide.config, decoderOnly: true } });

    const out = join(tmp, 'leffa-wide');
    await exportCheckpoint({ ckpt: src, out, ema: false, decoderFrom: decoderRun });
    const extra = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')).extra;
    expect(extra.config.vae).toMatchObject({ decoderBlockOutChannels: [16, 24], scalingFactor: 0.5 });
    expect(extra.decoderFrom).toBe(decoderRun);
    const loaded = await leffaFrom(await openCheckpointFolder(out));
    const z = T.randn([1, 4, 4, 3], { generator: new T.Generator(2) });
    const [got, want, old] = await Promise.all(
      T.noGrad(() =>
        [loaded.vae.decode(z), wide.decode(z), leffa.vae.decode(z)].map((t) => T.cast(t, 'float32').data()),
      ),
    );
    expect(maxDiff(got, want)).toBeLessThan(2e-2); // float16 weights
    expect(maxDiff(old, want)).toBeGreaterThan(0.05); // the decoder did change
    // The UNets came through unchanged (float16 rounding).
    const unetKey = 'unet.conv_in.weight';
    expect(
      maxDiff(await loaded.stateDict().get(unetKey)!.data(), await leffa.stateDict().get(unetKey)!.data()),
    ).toBeLessThan(1e-3);

    // A VAE with another encoder would make latents the UNets never saw.
    const stranger = new AutoencoderKL(WIDE);
    const strangerRun = join(tmp, 'stranger');
    await T.saveCheckpoint(strangerRun, { model: stranger, extra: { config: WIDE } });
    await expect(
      exportCheckpoint({ ckpt: src, out: join(tmp, 'bad'), ema: false, decoderFrom: strangerRun }),
    ).rejects.toThrow(/has another encoder than the model's VAE/);
    T.dispose([z, ...leffa.parameters(), ...wide.parameters(), ...stranger.parameters(), ...loaded.parameters()]);
  });
});
