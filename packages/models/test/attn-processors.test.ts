import * as T from '@leffa-webgpu/core';
import {
  type Attention,
  type AttentionCallInfo,
  DefaultAttnProcessor,
  TINY_UNET,
  UNet2DConditionModel,
} from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

/** Default attention that records which layers called it and with which token grid. */
class RecordingProcessor extends DefaultAttnProcessor {
  readonly calls: AttentionCallInfo[] = [];
  override call(attn: Attention, hidden: T.Tensor, context?: T.Tensor, info?: AttentionCallInfo): T.Tensor {
    this.calls.push(info!);
    return super.call(attn, hidden, context);
  }
}

describe('UNet attention processors', () => {
  const latent = () => T.randn([1, 4, 8, 6], { generator: new T.Generator(3) });

  it('lists every attention module, swaps processors without touching the state dict, and computes the same', async () => {
    const unet = new UNet2DConditionModel({ ...TINY_UNET, inChannels: 4 });
    const keys = [...unet.stateDict().keys()];
    const procs = unet.attnProcessors();
    const names = [...procs.keys()];
    expect(names.filter((n) => n.endsWith('.attn1')).length).toBe(names.filter((n) => n.endsWith('.attn2')).length);
    expect(names).toContain('down_blocks.0.attentions.0.transformer_blocks.0.attn1');
    for (const p of procs.values()) expect(p).toBeInstanceOf(DefaultAttnProcessor);

    const plain = await unet.forward(latent(), 10).sample.data();
    const rec = new RecordingProcessor();
    unet.setAttnProcessor((name) => (name.endsWith('.attn1') ? rec : null));
    expect([...unet.stateDict().keys()]).toEqual(keys);
    const swapped = await unet.forward(latent(), 10).sample.data();
    expect(swapped).toEqual(plain);
    // Every attn1 ran once, named and with its token grid (the 8x6 latent at the first level).
    expect(rec.calls.map((c) => c.layer)).toEqual(names.filter((n) => n.endsWith('.attn1')));
    expect(rec.calls[0]!.grid).toEqual({ height: 8, width: 6 });
  });

  it('a Leffa role installs reference processors for one pass only and restores the previous', async () => {
    const ref = new UNet2DConditionModel({ ...TINY_UNET, inChannels: 4 });
    const gen = new UNet2DConditionModel({ ...TINY_UNET, inChannels: 4 });
    const rec = new RecordingProcessor();
    gen.setAttnProcessor(rec);
    const features = ref.forward(latent(), 10, { reference: { mode: 'collect' } }).referenceFeatures;
    expect(features.length).toBe([...ref.attnProcessors().keys()].filter((n) => n.endsWith('.attn1')).length);
    for (const p of ref.attnProcessors().values()) expect(p).toBeInstanceOf(DefaultAttnProcessor);

    gen.forward(latent(), 10, { reference: { mode: 'consume', features } });
    for (const p of gen.attnProcessors().values()) expect(p).toBe(rec);
    expect(() =>
      gen.forward(latent(), 10, { reference: { mode: 'consume', features: features.slice(0, -1) } }),
    ).toThrow(/no reference feature/);
    expect(() =>
      gen.forward(latent(), 10, { reference: { mode: 'consume', features: [...features, features[0]!] } }),
    ).toThrow(/reference features given, \d+ used/);
    for (const p of gen.attnProcessors().values()) expect(p).toBe(rec);
  });
});
