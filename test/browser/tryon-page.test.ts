/**
 * End to end in a real browser: the Vite example page is built and served, Debian's Chromium (headless, WebGPU
 * on its SwiftShader adapter) uploads a person and a garment photo and runs try-on; the result must appear and
 * match the Node result of the same pipeline on the same inputs (lavapipe here, SwiftShader there: the same
 * kernels on two drivers, so within a small tolerance, not bit for bit). A screenshot is kept in test/browser/output.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { encodePng, generateSample, type RgbImage } from '@leffa-webgpu/data';
import { loadLeffa, loadPhotoModels, runPhotoPipeline } from '@leffa-webgpu/pipelines';
import { type Browser, chromium } from 'playwright-core';
import { type PreviewServer, build, preview } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const configFile = here('../../examples/browser/vite.config.ts');
const output = here('./output');
const tmp = mkdtempSync(join(tmpdir(), 'browser-tryon-'));
const outDir = join(tmp, 'site');
const STEPS = 4; // few: SwiftShader runs the 32x24-latent UNets slowly, and the test is about agreement, not quality
const SEED = 3;

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
let server: PreviewServer;
let browser: Browser;

// A synthetic person and garment at a size unlike the model's (the page letterboxes them as the CLI does).
const sample = generateSample({ seed: 11, height: 200, width: 150 });
const person: RgbImage = { width: 150, height: 200, data: sample.person.image };
const garment: RgbImage = { width: 150, height: 200, data: sample.garment };

beforeAll(async () => {
  if (!existsSync(chromiumPath))
    throw new Error(`browser test: no Chromium at ${chromiumPath}; run scripts/setup-browser.sh or set CHROMIUM_PATH`);
  writeFileSync(join(tmp, 'person.png'), encodePng(person));
  writeFileSync(join(tmp, 'garment.png'), encodePng(garment));
  await build({ configFile, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  server = await preview({
    configFile,
    logLevel: 'warn',
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: false },
  });
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader'],
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.httpServer.close(() => resolve()) : resolve()));
  rmSync(tmp, { recursive: true, force: true });
});

describe('browser example (Vite + Chromium WebGPU)', () => {
  it('the site carries only the checkpoints the page loads (no leffa-tiny-pose)', () => {
    expect(readdirSync(outDir).sort()).toEqual([
      'assets',
      'densepose-small',
      'index.html',
      'leffa-tiny-tryon',
      'openpose-small',
      'schp-small',
    ]);
    for (const name of ['densepose-small', 'leffa-tiny-tryon', 'openpose-small', 'schp-small']) {
      expect(readdirSync(join(outDir, name)).sort(), name).toEqual(['model.safetensors', 'state.json']);
    }
  });

  it('runs try-on on two uploaded photos and matches the Node result', async () => {
    // The same pipeline in Node, from the same shipped checkpoints.
    await T.init();
    const models = await loadPhotoModels({
      openpose: 'shipped:openpose-small',
      schp: 'shipped:schp-small',
      densepose: 'shipped:densepose-small',
    });
    const leffa = await loadLeffa('shipped:leffa-tiny-tryon');
    const expected = (
      await runPhotoPipeline('tryon', {
        person,
        reference: garment,
        models,
        leffa,
        size: [128, 96],
        steps: STEPS,
        seed: SEED,
        repaint: true,
      })
    ).result;

    const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
    const logs: string[] = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(server.resolvedUrls!.local[0]!);
    await page.setInputFiles('#person', join(tmp, 'person.png'));
    await page.setInputFiles('#garment', join(tmp, 'garment.png'));
    await page.fill('#steps', String(STEPS));
    await page.fill('#seed', String(SEED));
    expect(await page.isChecked('#repaint')).toBe(true);
    await page.click('#run');
    await page.waitForFunction(
      () => ['done', 'error'].includes(document.getElementById('status')!.dataset.state!),
      null,
      { timeout: 540_000, polling: 500 },
    );
    mkdirSync(output, { recursive: true });
    await page.screenshot({ path: join(output, 'tryon-page.png'), fullPage: true });
    const status = await page.textContent('#status');
    expect(await page.getAttribute('#status', 'data-state'), `${status}\n${logs.join('\n')}`).toBe('done');
    expect(
      await page.$eval('#progress', (p) => [(p as HTMLProgressElement).value, (p as HTMLProgressElement).max]),
    ).toEqual([STEPS + 1, STEPS + 1]);

    const shown = await page.$eval('#result', (c) => {
      const canvas = c as HTMLCanvasElement;
      const rgba = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      return { width: canvas.width, height: canvas.height, rgb: Array.from(rgba).filter((_, i) => i % 4 !== 3) };
    });
    expect([shown.width, shown.height]).toEqual([expected.width, expected.height]);
    let sum = 0;
    let far = 0;
    for (let i = 0; i < shown.rgb.length; i++) {
      const d = Math.abs(shown.rgb[i]! - expected.data[i]!);
      sum += d;
      if (d > 24) far++;
    }
    const meanDiff = sum / shown.rgb.length;
    const farShare = far / shown.rgb.length;
    console.log(
      `browser vs Node: mean |diff| ${meanDiff.toFixed(3)} / 255, ${(100 * farShare).toFixed(2)}% of values off by more than 24`,
    );
    expect(meanDiff).toBeLessThan(2);
    expect(farShare).toBeLessThan(0.01);
    await page.close();
  }, 600_000);
});
