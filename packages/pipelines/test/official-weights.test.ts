/**
 * Official weights files (pytorch-openpose's body_pose_model.pth, SCHP's exp-schp-*.pth, Leffa's
 * virtual_tryon.pth and a .safetensors copy) loaded strictly into our models. The files are written by
 * torch.save with the official key names and nesting at small shapes (test/golden/cases_official_weights.py,
 * `npm run golden`); the MICRO_* configs below are the architectures written there.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import {
  LEFFA_CONFIGS,
  type LeffaConfig,
  OPENPOSE_BODY,
  type OpenPoseConfig,
  OpenPoseBody,
  SCHP_CONFIGS,
  type SCHPConfig,
  SD15_UNET,
  SD15_VAE,
  SDXL_UNET,
} from '@leffa-webgpu/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isWeightsFile,
  leffaKeys,
  loadLeffaWeights,
  loadOpenPose,
  loadOpenPoseWeights,
  loadSchp,
  loadSchpWeights,
  officialLeffaConfig,
  officialSchpModel,
  openPoseKeyTable,
  readWeightsFile,
} from '@leffa-webgpu/pipelines';

const golden = (name: string) => fileURLToPath(new URL(`../../../test/golden/out/${name}`, import.meta.url));
const readGolden = (name: string) => T.readPth(new Uint8Array(readFileSync(golden(name))), name);

const MICRO_OPENPOSE: OpenPoseConfig = {
  vgg: [4, 4, 8, 8],
  cpm: [8, 4],
  stageWidth: 4,
  stage1Expand: 8,
  stages: 3,
  refineKernel: 1,
  finalHeatmapRelu: true,
  boxsize: 368,
};
const MICRO_SCHP = (numClasses: number): SCHPConfig => ({
  layers: [1, 1, 1, 1],
  stem: [4, 4],
  planes: [2, 2, 4, 4],
  multiGrid: [1, 1, 1],
  psp: 4,
  pspSizes: [1, 2, 3, 6],
  edge: 4,
  edgeClasses: 2,
  decoder: 4,
  decoderLow: 4,
  fusion: 4,
  numClasses,
});
const MICRO_LEFFA: LeffaConfig = {
  vae: { ...SD15_VAE, blockOutChannels: [4, 4], layersPerBlock: 1, normNumGroups: 2 },
  unet: {
    ...SD15_UNET,
    blockOutChannels: [8, 8],
    downBlockTypes: ['DownBlock2D', 'DownBlock2D'],
    upBlockTypes: ['UpBlock2D', 'UpBlock2D'],
    layersPerBlock: 1,
    attentionHeads: 1,
    crossAttentionDim: 4,
    normNumGroups: 4,
  },
};

/** pose_transfer.pth's SDXL layout at the small shapes of cases_official_weights.py (LEFFA_SDXL_UNET). */
const MICRO_LEFFA_SDXL: LeffaConfig = {
  vae: MICRO_LEFFA.vae,
  unet: {
    ...SDXL_UNET,
    blockOutChannels: [8, 8],
    downBlockTypes: ['DownBlock2D', 'CrossAttnDownBlock2D'],
    upBlockTypes: ['CrossAttnUpBlock2D', 'UpBlock2D'],
    layersPerBlock: 1,
    attentionHeads: [1, 2],
    transformerLayersPerBlock: [1, 2],
    addition: { type: 'text_time', timeEmbedDim: 4, projectionInputDim: 12 },
    crossAttentionDim: 4,
    normNumGroups: 4,
  },
  schedule: LEFFA_CONFIGS.sdxl.schedule,
};

const tmp = mkdtempSync(join(tmpdir(), 'official-weights-'));

beforeAll(async () => {
  await T.init();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every tensor of the model, read back from the device, equals the file's tensor under `fileKey(ourKey)`. */
async function expectFileValues(
  model: T.Module,
  file: Map<string, T.HostTensor>,
  fileKey: (key: string) => string = (k) => k,
) {
  const own = model.stateDict();
  expect(own.size).toBe(file.size);
  for (const [key, t] of own) {
    const want = file.get(fileKey(key));
    expect(want, key).toBeDefined();
    expect(t.shape, key).toEqual(want!.shape);
    const got = t.dtype === 'int32' ? await t.intData() : await t.data();
    expect(Array.from(got), key).toEqual(Array.from(want!.data));
  }
}

describe('official weights: OpenPose (body_pose_model.pth)', () => {
  it("loads the file's flat keys strictly; every tensor is the file's", async () => {
    const model = await loadOpenPoseWeights(golden('official_openpose_body.pth'), { config: MICRO_OPENPOSE });
    expect(model).toBeInstanceOf(OpenPoseBody);
    expect(model.training).toBe(false);
    const file = readGolden('official_openpose_body.pth');
    expect(file.has('conv1_1.weight') && file.has('conv5_5_CPM_L2.bias') && file.has('Mconv7_stage3_L1.weight')).toBe(
      true,
    );
    await expectFileValues(model, file);
    // The network runs on the loaded weights: 3 stages of 38 PAF and 19 heatmap channels at stride 8.
    const out = model.forward(T.rand([1, 3, 32, 24], { generator: new T.Generator(1) }));
    expect(out.stages.map((s) => [s.paf.shape, s.heatmap.shape])).toEqual(
      Array(3).fill([
        [1, 38, 4, 3],
        [1, 19, 4, 3],
      ]),
    );
    model.dispose();
  });

  it("maps every key of pytorch-openpose's full-size module layout (and its flat form) onto ours", () => {
    const model = T.nn.withoutInit(() => new OpenPoseBody(OPENPOSE_BODY));
    const own = model.stateDict();
    const table = openPoseKeyTable(own.keys());
    // Written by PyTorch from the module layout (model0.conv1_1.weight, model1_1..., model6_2...).
    const official = JSON.parse(readFileSync(golden('openpose_keys.json'), 'utf8')) as Record<string, number[]>;
    expect(Object.keys(official).length).toBe(own.size);
    expect(table.size).toBe(2 * own.size);
    for (const [key, shape] of Object.entries(official)) {
      const flat = key.split('.').slice(1).join('.'); // body_pose_model.pth's key (util.transfer's inverse)
      expect(table.get(key), key).toBe(flat);
      expect(table.get(flat), flat).toBe(flat);
      expect(own.get(flat)?.shape, key).toEqual(shape);
    }
    expect(table.get('model0.conv4_4_CPM.bias')).toBe('conv4_4_CPM.bias');
    expect(table.get('model1_2.conv5_5_CPM_L2.weight')).toBe('conv5_5_CPM_L2.weight');
    expect(table.get('model6_1.Mconv7_stage6_L1.weight')).toBe('Mconv7_stage6_L1.weight');
    model.dispose();
  });

  it('a wrong shape fails the strict load, naming the file and the key', async () => {
    const path = golden('official_openpose_wrong_shape.pth');
    const err = await loadOpenPoseWeights(path, { config: MICRO_OPENPOSE }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain('loadStateDict(OpenPoseBody): 1 problem(s)');
    expect((err as Error).message).toContain(
      'shape mismatch for Mconv7_stage2_L2.weight: expected [19, 4, 1, 1], got [20, 4, 1, 1]',
    );
  });

  it('loadOpenPose (the CLI loader) sends a .pth to the official loader with the full-size config', async () => {
    const path = golden('official_openpose_body.pth');
    await expect(loadOpenPose(path)).rejects.toThrow(
      /OPENPOSE_BODY[\s\S]*shape mismatch for conv1_1\.weight: expected \[64, 3, 3, 3\], got \[4, 3, 3, 3\]/,
    );
  });
});

describe('official weights: SCHP (exp-schp-*.pth)', () => {
  it("loads {'state_dict': {'module.*'}} strictly; LIP's class count gives 473x473; every tensor is the file's", async () => {
    const path = golden('official_schp_lip.pth');
    const { model, aggregate, inputSize } = await loadSchpWeights(path, { config: MICRO_SCHP(20) });
    expect(aggregate).toBe(false);
    expect(inputSize).toEqual([473, 473]);
    expect(model.training).toBe(false);
    const file = readGolden('official_schp_lip.pth'); // unwraps 'state_dict', keeps 'module.'
    expect([...file.keys()].every((k) => k.startsWith('module.'))).toBe(true);
    await expectFileValues(model, file, (k) => `module.${k}`);
    model.dispose();
  });

  it('picks the released model from the class count (20 LIP, 18 ATR, 7 Pascal)', () => {
    const shapes = (classes: number) =>
      new Map([
        ['conv1.weight', [64, 3, 3, 3]],
        ['fushion.3.weight', [classes, 256, 1, 1]],
      ]);
    expect(officialSchpModel(shapes(20))).toMatchObject({
      name: 'resnet101_lip',
      dataset: 'LIP',
      classes: 20,
      inputSize: [473, 473],
      config: SCHP_CONFIGS.resnet101_lip,
    });
    expect(officialSchpModel(shapes(18))).toMatchObject({
      name: 'resnet101_atr',
      classes: 18,
      inputSize: [512, 512],
      config: SCHP_CONFIGS.resnet101_atr,
    });
    expect(officialSchpModel(shapes(7))).toMatchObject({
      name: 'resnet101_pascal',
      classes: 7,
      inputSize: [512, 512],
      config: SCHP_CONFIGS.resnet101_pascal,
    });
    expect(SCHP_CONFIGS.resnet101_pascal.numClasses).toBe(7);
    expect(() => officialSchpModel(shapes(5), 'x.pth')).toThrow(
      'x.pth: the SCHP classifier has 5 classes; the released models have 20 (LIP), 18 (ATR), 7 (Pascal-Person-Part)',
    );
    expect(() => officialSchpModel(new Map([['conv1.weight', [64, 3, 3, 3]]]), 'y.pth')).toThrow(
      /y\.pth: no 'fushion\.3\.weight'/,
    );
  });

  it('loadSchp (the CLI loader) takes a .pth: ATR classes give 512x512; the default is the ResNet-101 of the class count', async () => {
    const atr = golden('official_schp_atr.pth');
    const loaded = await loadSchp(atr, 'auto', { config: MICRO_SCHP(18) });
    expect(loaded.aggregate).toBe(false);
    expect(loaded.inputSize).toEqual([512, 512]);
    expect(loaded.model.config.numClasses).toBe(18);
    loaded.model.dispose();
    await expect(loadSchp(atr, 'aggregate')).rejects.toThrow(/one set of weights/);
    // Without an override the file must be the full ResNet-101 of its class count.
    await expect(loadSchp(atr)).rejects.toThrow(
      /SCHP_CONFIGS\.resnet101_atr[\s\S]*shape mismatch for conv1\.weight: expected \[64, 3, 3, 3\], got \[4, 3, 3, 3\]/,
    );
  });

  it('a missing key fails the strict load, naming the file and the key', async () => {
    const path = golden('official_schp_missing_key.pth');
    const err = await loadSchpWeights(path, { config: MICRO_SCHP(20) }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toMatch(
      /loadStateDict\(SCHPNetwork\): 1 problem\(s\)\n {2}missing: edge\.conv4\.bias$/,
    );
  });
});

describe('official weights: Leffa (virtual_tryon.pth, .safetensors)', () => {
  it("loads the whole LeffaModel state dict from a .pth strictly, in eval mode; every tensor is the file's", async () => {
    const model = await loadLeffaWeights(golden('official_leffa.pth'), { config: MICRO_LEFFA });
    expect(model.training).toBe(false);
    const file = readGolden('official_leffa.pth');
    expect(new Set([...file.keys()].map((k) => k.split('.')[0]))).toEqual(new Set(['vae', 'unet_encoder', 'unet']));
    await expectFileValues(model, file);
    model.dispose();
  });

  it('loads the same state dict from .safetensors, with the legacy VAE attention names mapped', async () => {
    const path = golden('official_leffa.safetensors');
    const model = await loadLeffaWeights(path, { config: MICRO_LEFFA });
    const file = T.readSafetensors(new Uint8Array(readFileSync(path)), path).tensors;
    expect(file.has('vae.encoder.mid_block.attentions.0.query.weight')).toBe(true);
    const legacy: Record<string, string> = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' };
    await expectFileValues(model, file, (k) =>
      k.startsWith('vae.')
        ? k.replace(
            /(\.attentions\.\d+\.)(to_q|to_k|to_v|to_out\.0)\./,
            (_, pre: string, n: string) => `${pre}${legacy[n]}.`,
          )
        : k,
    );
    // The .pth and the .safetensors hold the same values.
    const fromPth = await loadLeffaWeights(golden('official_leffa.pth'), { config: MICRO_LEFFA });
    const key = 'vae.decoder.mid_block.attentions.0.to_out.0.weight';
    expect(Array.from(await model.stateDict().get(key)!.data())).toEqual(
      Array.from(await fromPth.stateDict().get(key)!.data()),
    );
    model.dispose();
    fromPth.dispose();
    expect([
      ...leffaKeys(
        new Map([
          ['vae.encoder.mid_block.attentions.0.proj_attn.bias', 0],
          ['unet.conv_in.weight', 1],
        ]),
      ).keys(),
    ]).toEqual(['vae.encoder.mid_block.attentions.0.to_out.0.bias', 'unet.conv_in.weight']);
  });
});

describe('official weights: Leffa SDXL (pose_transfer.pth)', () => {
  it("loads the SDXL layout (add_embedding.*, linear projections, per-block depths) strictly; every tensor is the file's", async () => {
    const path = golden('official_leffa_sdxl.pth');
    const model = await loadLeffaWeights(path, { config: MICRO_LEFFA_SDXL });
    expect(model.training).toBe(false);
    const file = readGolden('official_leffa_sdxl.pth');
    expect(file.get('unet_encoder.add_embedding.linear_2.bias')?.shape).toEqual([32]);
    expect(file.get('unet.down_blocks.1.attentions.0.proj_out.weight')?.shape).toEqual([8, 8]);
    expect(file.has('unet.up_blocks.0.attentions.1.transformer_blocks.1.attn1.to_q.weight')).toBe(true);
    await expectFileValues(model, file);
    model.dispose();
    // The SD 1.5 layout does not take it: the strict load lists what differs.
    await expect(loadLeffaWeights(path, { config: MICRO_LEFFA })).rejects.toThrow(
      /LeffaModel\(config\)[\s\S]*unexpected: unet_encoder\.add_embedding\.linear_1\.weight/,
    );
  });

  it('without a config, the keys pick LEFFA_CONFIGS.sdxl (add_embedding) or .sd15; the load is then strict at full size', async () => {
    // The small files are told apart like the released ones, then fail the full-size shapes by name.
    await expect(loadLeffaWeights(golden('official_leffa_sdxl.pth'))).rejects.toThrow(
      /LeffaModel\(LEFFA_CONFIGS\.sdxl\)[\s\S]*shape mismatch for unet\.add_embedding\.linear_1\.weight: expected \[1280, 2816\], got \[32, 12\]/,
    );
    await expect(loadLeffaWeights(golden('official_leffa.pth'))).rejects.toThrow(
      /LeffaModel\(LEFFA_CONFIGS\.sd15\)[\s\S]*shape mismatch for unet\.conv_in\.weight: expected \[320, 12, 3, 3\], got \[8, 12, 3, 3\]/,
    );
    // Key sets as the released files have them (pose_transfer.pth: the full SDXL key set of the diffusion goldens).
    const sdxlShapes = new Map(
      Object.entries(
        (
          JSON.parse(readFileSync(golden('diffusion_sdxl_leffa_keys.json'), 'utf8')) as {
            shapes: Record<string, number[]>;
          }
        ).shapes,
      ),
    );
    expect(officialLeffaConfig(sdxlShapes)).toEqual({ name: 'sdxl', config: LEFFA_CONFIGS.sdxl });
    const sd15Shapes = new Map([...sdxlShapes].filter(([k]) => !k.includes('add_embedding')));
    expect(officialLeffaConfig(sd15Shapes).name).toBe('sd15');
    expect(() => officialLeffaConfig(new Map([['conv1.weight', [64, 3, 3, 3]]]), 'x.pth')).toThrow(
      /x\.pth: no 'unet\.conv_in\.weight'.*not a Leffa state dict/,
    );
  });
});

describe('official weights: files', () => {
  it('tells weights files from checkpoint folders', () => {
    expect(isWeightsFile(golden('official_leffa.pth'))).toBe(true);
    expect(isWeightsFile(golden('official_leffa.safetensors'))).toBe(true);
    expect(isWeightsFile(join(tmp, 'not-there.bin'))).toBe(true); // reported as a missing file, not a folder
    expect(isWeightsFile('shipped:openpose-small')).toBe(false);
    expect(isWeightsFile(tmp)).toBe(false);
    expect(isWeightsFile(golden(''))).toBe(false);
  });

  it('a missing file, another format or a tar-format (PyTorch <= 0.3) torch.save file get errors naming the file', async () => {
    const missing = join(tmp, 'body_pose_model.pth');
    await expect(readWeightsFile(missing)).rejects.toThrow(`weights file '${missing}' does not exist`);
    await expect(loadOpenPose(missing)).rejects.toThrow(`weights file '${missing}' does not exist`);
    await expect(readWeightsFile(golden('openpose_keys.json'))).rejects.toThrow(
      /openpose_keys\.json' is not a weights file: expected a \.pth, \.pt or \.bin \(torch\.save\) or a \.safetensors file/,
    );
    const tar = golden('pth_legacy_tar.pth');
    await expect(loadOpenPoseWeights(tar, { config: MICRO_OPENPOSE })).rejects.toThrow(
      /pth_legacy_tar\.pth: a tar archive, torch\.save's format of PyTorch <= 0\.3, which is not supported/,
    );
  });
});
