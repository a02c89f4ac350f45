import * as T from '@leffa-webgpu/core';
import {
  AutoencoderKL,
  LEFFA_CONFIGS,
  LeffaModel,
  ReferenceCollectProcessor,
  ReferenceConsumeProcessor,
  ReferenceStore,
  SD15_UNET,
  SD15_VAE,
  SDXL_TINY_UNET,
  SDXL_UNET,
  convertLegacyVaeKeys,
  ResnetBlock2D,
  TINY_UNET,
  TINY_VAE,
  Transformer2DModel,
  UNet2DConditionModel,
  VaeMidBlock,
} from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.js';
import { ModelGolden } from '../helpers/model-golden.js';

beforeAll(async () => {
  await T.init();
});

const close = async (t: T.Tensor, g: ModelGolden, key: string, tol = 1e-4) => {
  expect([...t.shape], key).toEqual(g.host(key).shape);
  expectClose(await t.data(), g.host(key).data, tol, `${g.name} ${key}`);
};

describe('diffusion blocks against PyTorch', () => {
  it('ResnetBlock2D: output and every gradient', async () => {
    const g = new ModelGolden('diffusion_resnet');
    const block = new ResnetBlock2D(16, 24, { tembChannels: 20, groups: 8, eps: 1e-5 });
    block.loadStateDict(g.stateDict());
    const x = g.tensor('input/x');
    const temb = g.tensor('input/temb');
    x.requiresGrad = true;
    temb.requiresGrad = true;
    // The golden block applies silu to temb itself; ours takes silu(temb) precomputed once per UNet step.
    const y = block.forward(x, T.silu(temb));
    await close(y, g, 'output/y');
    T.sum(T.mul(y, g.tensor('gout/y'))).backward();
    await close(x.grad!, g, 'grad/input.x');
    await close(temb.grad!, g, 'grad/input.temb');
    for (const [name, p] of block.namedParameters()) await close(p.grad!, g, `grad/${name}`);
  });

  it('VAE mid-block', async () => {
    const g = new ModelGolden('diffusion_vae_mid');
    const mid = new VaeMidBlock(32, 8);
    mid.loadStateDict(g.stateDict());
    await close(mid.forward(g.tensor('input/x')), g, 'output/y');
  });

  it('Leffa Transformer2DModel with reference concat: outputs and gradients', async () => {
    const g = new ModelGolden('diffusion_transformer');
    const opts = { heads: 4, dimHead: 8, crossAttentionDim: 24, skipCrossAttention: true, layers: 1, groups: 8 };
    const ref = new Transformer2DModel(32, opts);
    const gen = new Transformer2DModel(32, opts);
    ref.loadStateDict(g.stateDict('refweights'));
    gen.loadStateDict(g.stateDict());
    const collect = new ReferenceStore();
    ref.transformer_blocks.at(0).attn1.processor = new ReferenceCollectProcessor(collect);
    await close(ref.forward(g.tensor('input/x_ref')), g, 'output/y_ref');
    await close(collect.features[0]!, g, 'output/feature0');
    gen.transformer_blocks.at(0).attn1.processor = new ReferenceConsumeProcessor(new ReferenceStore(collect.features));
    const x = g.tensor('input/x_gen');
    x.requiresGrad = true;
    const y = gen.forward(x);
    await close(y, g, 'output/y_gen');
    T.sum(T.mul(y, g.tensor('gout/y_gen'))).backward();
    await close(x.grad!, g, 'grad/input.x_gen');
    for (const [name, p] of gen.namedParameters()) {
      if (name.includes('attn2.')) {
        expect(p.grad, `${name} is unused by Leffa`).toBeNull();
        continue;
      }
      await close(p.grad!, g, `grad/${name}`);
    }
  });

  it('tiny AutoencoderKL: encode moments and decode', async () => {
    const g = new ModelGolden('diffusion_vae');
    const vae = new AutoencoderKL(TINY_VAE);
    vae.loadStateDict(g.stateDict());
    const dist = vae.encode(g.tensor('input/image'));
    await close(T.concat([dist.mean, dist.logvar], 1), g, 'output/moments');
    await close(vae.decode(g.tensor('input/z')), g, 'output/decoded');
  });

  it('AutoencoderKL with a wider decoder (decoderBlockOutChannels): decode of an odd latent and its gradients', async () => {
    const g = new ModelGolden('diffusion_vae_wide_decoder');
    const vae = new AutoencoderKL({ ...TINY_VAE, blockOutChannels: [8, 16], decoderBlockOutChannels: [16, 24] });
    vae.loadStateDict(g.stateDict());
    const z = g.tensor('input/z');
    z.requiresGrad = true;
    const y = vae.decode(z);
    await close(y, g, 'output/decoded');
    T.sum(T.mul(y, g.tensor('gout/decoded'))).backward();
    await close(z.grad!, g, 'grad/input.z');
    let checked = 0;
    for (const [name, p] of vae.namedParameters()) {
      if (!name.startsWith('decoder.') && !name.startsWith('post_quant_conv.')) continue;
      if (name.endsWith('to_k.bias')) {
        // A key bias adds the same q . b to every score of a query, which the softmax cancels: its gradient is 0,
        // and both sides hold only rounding (~1e-8), which a relative comparison cannot judge.
        const [got, want] = [await p.grad!.data(), g.tensor(`grad/${name}`)];
        expect(Math.max(...Array.from(got, Math.abs), ...Array.from(await want.data(), Math.abs))).toBeLessThan(1e-6);
        checked++;
        continue;
      }
      await close(p.grad!, g, `grad/${name}`);
      checked++;
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('tiny Leffa UNet pair: reference features and generative output', async () => {
    const g = new ModelGolden('diffusion_unet');
    const refUnet = new UNet2DConditionModel({ ...TINY_UNET, inChannels: 4 });
    const genUnet = new UNet2DConditionModel({ ...TINY_UNET, inChannels: 12 });
    refUnet.loadStateDict(g.stateDict('refweights'));
    genUnet.loadStateDict(g.stateDict());
    const t = [10, 870];
    const r = refUnet.forward(g.tensor('input/latent_ref'), t, { reference: { mode: 'collect' } });
    await close(r.sample, g, 'output/ref');
    expect(r.referenceFeatures.length).toBe(Number(g.metadata.features));
    for (const [i, f] of r.referenceFeatures.entries()) await close(f, g, `output/feature${i}`);
    const out = genUnet.forward(g.tensor('input/latent_gen'), t, {
      reference: { mode: 'consume', features: r.referenceFeatures },
    });
    await close(out.sample, g, 'output/gen');
  });
});

describe('SDXL layout at test size (per-block depths and heads, linear projections, add_embedding)', () => {
  it('tiny SDXL Leffa UNet pair: reference features and generative output; add_embedding loaded and unused', async () => {
    const g = new ModelGolden('diffusion_unet_sdxl');
    const refUnet = new UNet2DConditionModel({ ...SDXL_TINY_UNET, inChannels: 4 });
    const genUnet = new UNet2DConditionModel({ ...SDXL_TINY_UNET, inChannels: 12 });
    // Strict loads: the golden state dicts hold add_embedding.* and [C, C] proj_in / proj_out weights.
    refUnet.loadStateDict(g.stateDict('refweights'));
    genUnet.loadStateDict(g.stateDict());
    expect(genUnet.add_embedding!.linear_1.weight.shape).toEqual([128, 40]);
    expect(genUnet.down_blocks.at(1).attentions!.at(0).proj_in.weight.shape).toEqual([48, 48]);
    expect(genUnet.mid_block.attentions.at(0).transformer_blocks.length).toBe(3);
    expect(genUnet.up_blocks.at(1).attentions!.at(0).transformer_blocks.length).toBe(2);
    expect(genUnet.up_blocks.at(0).attentions!.at(0).transformer_blocks.at(0).attn1.heads).toBe(4);
    const t = [10, 870];
    const r = refUnet.forward(g.tensor('input/latent_ref'), t, { reference: { mode: 'collect' } });
    await close(r.sample, g, 'output/ref');
    expect(r.referenceFeatures.length).toBe(Number(g.metadata.features));
    for (const [i, f] of r.referenceFeatures.entries()) await close(f, g, `output/feature${i}`);
    const x = g.tensor('input/latent_gen');
    const out = genUnet.forward(x, t, { reference: { mode: 'consume', features: r.referenceFeatures } });
    await close(out.sample, g, 'output/gen');
    // Nothing of add_embedding is on the path from input to output.
    T.sum(out.sample).backward();
    for (const [name, p] of genUnet.add_embedding!.namedParameters('add_embedding')) expect(p.grad, name).toBeNull();
    expect(genUnet.time_embedding.linear_1.weight.grad).not.toBeNull();
  });

  it('per-block settings must have one entry per block and split the channels into whole heads', () => {
    expect(() => new UNet2DConditionModel({ ...SDXL_TINY_UNET, transformerLayersPerBlock: [1, 2] })).toThrow(
      'UNet config: transformerLayersPerBlock has 2 entries (1, 2) for 3 blocks',
    );
    expect(() => new UNet2DConditionModel({ ...SDXL_TINY_UNET, attentionHeads: [1, 2, 3, 4] })).toThrow(
      'UNet config: attentionHeads has 4 entries (1, 2, 3, 4) for 3 blocks',
    );
    expect(() => new UNet2DConditionModel({ ...SDXL_TINY_UNET, attentionHeads: [1, 5, 4] })).toThrow(
      'UNet block: 48 channels do not split into 5 heads',
    );
  });
});

describe('Leffa SDXL key layout (pose_transfer.pth)', () => {
  it("LEFFA_CONFIGS.sdxl has exactly the torch model's keys and shapes, built without allocating its weights", async () => {
    const { readFileSync } = await import('node:fs');
    const { fileURLToPath } = await import('node:url');
    const expected = JSON.parse(
      readFileSync(fileURLToPath(new URL('../golden/out/diffusion_sdxl_leffa_keys.json', import.meta.url)), 'utf8'),
    ) as {
      shapes: Record<string, number[]>;
      parameters: Record<'vae' | 'unet_encoder' | 'unet', number>;
    };
    const before = T.memoryStats().liveBytes;
    // ~5.2 billion parameters (21 GB in float32): only the normalisation layers' few MB get buffers.
    const model = T.nn.withoutInit(() => new LeffaModel(LEFFA_CONFIGS.sdxl));
    expect(T.memoryStats().liveBytes - before).toBeLessThan(64 * 2 ** 20);
    const shapes = new Map(Object.entries(expected.shapes));
    expect(model.checkStateDict(shapes)).toEqual({ missing: [], unexpected: [], mismatched: [] });
    expect(model.stateDict().size).toBe(shapes.size);
    for (const part of ['vae', 'unet_encoder', 'unet'] as const)
      expect(model[part].numParameters(), part).toBe(expected.parameters[part]);
    // The released UNet of SDXL base has 2,567,463,684 parameters; the reference UNet is that one (4 input channels).
    expect(model.unet_encoder.numParameters()).toBe(2_567_463_684);
    for (const key of ['unet.add_embedding.linear_1.weight', 'unet_encoder.add_embedding.linear_1.weight'])
      expect(shapes.get(key)).toEqual([1280, 2816]);
    expect(shapes.get('unet.mid_block.attentions.0.transformer_blocks.9.attn1.to_q.weight')).toEqual([1280, 1280]);
    expect(shapes.has('unet.down_blocks.0.attentions.0.norm.weight')).toBe(false);
    // A wrong shape is reported by name (here: an SD 1.5-style 1x1-conv projection).
    const victim = 'unet.down_blocks.1.attentions.1.proj_in.weight';
    const wrong = new Map(shapes).set(victim, [640, 640, 1, 1]);
    expect(model.checkStateDict(wrong).mismatched).toEqual([
      { key: victim, expected: [640, 640], got: [640, 640, 1, 1] },
    ]);
    model.dispose();
    expect(T.memoryStats().liveBytes).toBe(before);
    expect(model.config.schedule?.rescaleBetasZeroSnr).toBe(true);
    expect(model.config.vae.scalingFactor).toBe(0.13025);
    expect(SDXL_UNET.inChannels).toBe(9); // the inpainting config; LeffaModel replaces conv_in (4 and 12)
  });
});

describe('Stable Diffusion 1.5 key layout', () => {
  it('the SD1.5-size Leffa UNet and VAE have exactly the diffusers keys and shapes', async () => {
    const { readFileSync } = await import('node:fs');
    const { fileURLToPath } = await import('node:url');
    const expected = JSON.parse(
      readFileSync(fileURLToPath(new URL('../golden/out/diffusion_sd15_keys.json', import.meta.url)), 'utf8'),
    ) as Record<'unet' | 'vae', Record<string, number[]>>;
    // 860M parameters: allocated but not initialised (nothing is loaded, only names and shapes are compared).
    const unet = T.nn.withoutInit(() => new UNet2DConditionModel({ ...SD15_UNET, inChannels: 12 }));
    const vae = T.nn.withoutInit(() => new AutoencoderKL(SD15_VAE));
    for (const [model, key] of [
      [unet, 'unet'],
      [vae, 'vae'],
    ] as const) {
      const shapes = new Map(Object.entries(expected[key]));
      expect(model.checkStateDict(shapes)).toEqual({ missing: [], unexpected: [], mismatched: [] });
      // One wrong shape is reported by name.
      const wrong = new Map(shapes);
      const victim =
        key === 'unet'
          ? 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight'
          : 'decoder.mid_block.attentions.0.to_v.weight';
      wrong.set(victim, [7, 7]);
      expect(model.checkStateDict(wrong).mismatched).toEqual([
        { key: victim, expected: expected[key][victim], got: [7, 7] },
      ]);
      model.dispose();
    }
    expect(T.memoryStats().liveBytes).toBeLessThan(1e9);
  });

  it('maps legacy VAE attention names (query/key/value/proj_attn)', () => {
    const legacy = new Map([
      ['encoder.mid_block.attentions.0.query.weight', 1],
      ['encoder.mid_block.attentions.0.proj_attn.bias', 2],
      ['decoder.up_blocks.0.resnets.0.conv1.weight', 3],
    ]);
    expect([...convertLegacyVaeKeys(legacy).keys()]).toEqual([
      'encoder.mid_block.attentions.0.to_q.weight',
      'encoder.mid_block.attentions.0.to_out.0.bias',
      'decoder.up_blocks.0.resnets.0.conv1.weight',
    ]);
  });
});
