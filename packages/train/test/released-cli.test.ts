// tryon / pose-transfer --ckpts <folder> on the random-weight released folder of test/golden/cases_released_leffa.py.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImage, writePng } from '@leffa-webgpu/data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELEASED_FOLDER, SMALL_RELEASED } from '../../../test/helpers/released-leffa.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'released-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'packages/train/src/cli/main.ts', ...args], {
      cwd: repo,
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const person = join(tmp, 'person.png');
const garment = join(tmp, 'garment.png');
const overrides = join(tmp, 'small.json');
beforeAll(async () => {
  const img = (w: number, h: number, k: number) => ({
    width: w,
    height: h,
    data: Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * k + (i >> 7)) % 251),
  });
  await writePng(person, img(53, 77, 7));
  await writePng(garment, img(60, 40, 13));
  // Only what differs from the released models (the command merges the rest in).
  const { size, openposeConfig, densepose } = SMALL_RELEASED;
  const head = densepose.config!.head;
  writeFileSync(
    overrides,
    JSON.stringify({
      size,
      openpose: {
        vgg: openposeConfig.vgg,
        cpm: openposeConfig.cpm,
        stageWidth: 4,
        stage1Expand: 8,
        stages: 3,
        refineKernel: 1,
      },
      densepose: {
        config: {
          detector: {
            backbone: { stem: 8, res2Out: 16, bottleneck: 4, fpnOut: 16 },
            fcDim: 32,
            rpnPreNmsTopK: 100,
            rpnPostNmsTopK: 20,
            detectionsPerImage: 3,
          },
          head: { hidden: head.hidden },
        },
        resize: densepose.resize,
      },
    }),
  );
});

describe('--ckpts <folder>', () => {
  it('tryon writes the image, the mask and the densepose at the model size', async () => {
    const out = join(tmp, 'tryon.png');
    const args = [
      'tryon',
      '--ckpts',
      RELEASED_FOLDER,
      '--released-overrides',
      overrides,
      '--person',
      person,
      '--garment',
      garment,
      '--model-type',
      'dress_code',
      '--garment-type',
      'lower_body',
      '--steps',
      '2',
      '--repaint',
      '--ref-acceleration',
    ];
    const r = await cli(...args, '--out', out);
    expect(r.code, r.stderr).toBe(0);
    for (const f of [out, join(tmp, 'tryon-mask.png'), join(tmp, 'tryon-densepose.png')]) {
      const img = readImage(f);
      expect([img.width, img.height], f).toEqual([48, 64]);
    }
    // --low-memory moves the models, not the numbers: the same image.
    const low = join(tmp, 'tryon-low.png');
    const again = await cli(...args, '--low-memory', '--vae-tiling', 'off', '--out', low);
    expect(again.code, again.stderr).toBe(0);
    expect(readImage(low)).toEqual(readImage(out));
  });

  it("tryon on a real photo (JPEG): the three files, app.py's warning, none of the shipped-parser checks", async () => {
    const photo = fileURLToPath(new URL('../../pipelines/test/fixtures/astronaut-192x256.jpg', import.meta.url));
    const out = join(tmp, 'photo.png');
    const r = await cli(
      'tryon',
      '--ckpts',
      RELEASED_FOLDER,
      '--released-overrides',
      overrides,
      '--person',
      photo,
      '--garment',
      garment,
      '--steps',
      '1',
      '--out',
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `wrote ${out} (and ${join(tmp, 'photo-mask.png')}, ${join(tmp, 'photo-densepose.png')})`,
    );
    for (const f of [out, join(tmp, 'photo-mask.png'), join(tmp, 'photo-densepose.png')]) {
      const img = readImage(f);
      expect([img.width, img.height], f).toEqual([48, 64]);
    }
    // The random OpenPose finds no person: app.py's condition, reported; the shipped networks' checks (which refuse
    // this photo without --ckpts) are not applied to the released parsers.
    expect(r.stderr).toMatch(/warning: OpenPose found no person in the person image/);
    expect(r.stderr).not.toMatch(/photo preprocessing failed|--no-checks/);
  });

  it('pose-transfer runs the SDXL-layout model', async () => {
    const out = join(tmp, 'pose.png');
    const r = await cli(
      'pose-transfer',
      '--ckpts',
      RELEASED_FOLDER,
      '--released-overrides',
      overrides,
      '--target-pose',
      person,
      '--source',
      garment,
      '--steps',
      '1',
      '--out',
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(out)).toBe(true);
  });

  it('refuses bad combinations and names missing files', async () => {
    const both = await cli(
      'tryon',
      '--ckpts',
      RELEASED_FOLDER,
      '--ckpt',
      'x',
      '--person',
      person,
      '--garment',
      garment,
    );
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(
      /--ckpts runs Leffa's released models; --ckpt belong to this project's models and cannot be combined with it/,
    );
    const stray = await cli('tryon', '--model-type', 'dress_code', '--half', '--person', person, '--garment', garment);
    expect(stray.stderr).toMatch(/--half, --model-type only apply with --ckpts <folder>/);
    const partial = join(tmp, 'ckpts');
    cpSync(RELEASED_FOLDER, partial, { recursive: true });
    rmSync(join(partial, 'densepose'), { recursive: true });
    const missing = await cli('pose-transfer', '--ckpts', partial, '--target-pose', person, '--source', garment);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(
      `densepose/model_final_162be9.pkl (the DensePose R-CNN (densepose_rcnn_R_50_FPN_s1x)) is missing: put it at ${join(partial, 'densepose/model_final_162be9.pkl')}`,
    );
  });
});
