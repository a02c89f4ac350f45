/**
 * The random-weight released Leffa folder of test/golden/cases_released_leffa.py and the small architectures its
 * preprocessing models have (cases_official_weights.py's OpenPose, cases_densepose_chart.py's narrow R-CNN).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DENSEPOSE_CHART_HEAD, DENSEPOSE_RCNN_R50_FPN, type LeffaConfig } from '@leffa-webgpu/models';
import { type LoadReleasedLeffaOptions, leffaConfigFromDiffusers } from '@leffa-webgpu/pipelines';

export const RELEASED_FOLDER = fileURLToPath(new URL('../golden/out/released_leffa', import.meta.url));

/** The folder's Leffa architecture (SD1.5 or SDXL base), from its diffusers configs as loadReleasedLeffa reads it. */
export function releasedLeffaConfig(base: 'sd15' | 'sdxl'): LeffaConfig {
  const dir = join(
    RELEASED_FOLDER,
    base === 'sdxl' ? 'stable-diffusion-xl-1.0-inpainting-0.1' : 'stable-diffusion-inpainting',
  );
  const json = (p: string) => JSON.parse(readFileSync(join(dir, p), 'utf8')) as Record<string, unknown>;
  return leffaConfigFromDiffusers(
    {
      unet: json('unet/config.json'),
      vae: json('vae/config.json'),
      scheduler: json('scheduler/scheduler_config.json'),
    },
    { sdxl: base === 'sdxl', folder: dir },
  );
}

/** loadReleasedLeffa's options for that folder at a 64x48 model size. */
export const SMALL_RELEASED: Required<Pick<LoadReleasedLeffaOptions, 'size' | 'openposeConfig' | 'densepose'>> = {
  size: [64, 48],
  openposeConfig: {
    vgg: [4, 4, 8, 8],
    cpm: [8, 4],
    stageWidth: 4,
    stage1Expand: 8,
    stages: 3,
    refineKernel: 1,
    finalHeatmapRelu: true,
    boxsize: 368,
  },
  densepose: {
    config: {
      // The random detector scores nearly every box above 0.5, so few proposals and detections keep the tests short.
      detector: {
        ...DENSEPOSE_RCNN_R50_FPN,
        backbone: { blocks: [3, 4, 6, 3], stem: 8, res2Out: 16, bottleneck: 4, strideInOneByOne: true, fpnOut: 16 },
        fcDim: 32,
        rpnPreNmsTopK: 100,
        rpnPostNmsTopK: 20,
        detectionsPerImage: 3,
      },
      head: { ...DENSEPOSE_CHART_HEAD, hidden: 16 },
    },
    resize: { shortEdge: 96, maxSize: 160 },
  },
};
