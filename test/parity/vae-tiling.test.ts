import * as T from '@leffa-webgpu/core';
import {
  AutoencoderKL,
  SD15_VAE,
  TINY_VAE,
  type VaeConfig,
  vaeBlend,
  vaeFitsDevice,
  vaeTileSizeFor,
} from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.js';
import { ModelGolden } from '../helpers/model-golden.js';

beforeAll(async () => {
  await T.init();
});

// cases_vae_tiling.py's VAE: SD's four levels at narrow widths.
const CONFIG: VaeConfig = { ...TINY_VAE, blockOutChannels: [8, 16, 16, 16], layersPerBlock: 1, normNumGroups: 4 };
const CASES = ['enc64', 'enc96', 'dec64', 'dec96'] as const;

/** max |a - b| / max |b| over two host arrays. */
const relMax = (a: Float32Array, b: Float32Array) => {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
};

describe("tiled AutoencoderKL against diffusers' enable_tiling", () => {
  for (const name of CASES) {
    it(`${name}: tiles, blends and crops as diffusers`, async () => {
      const g = new ModelGolden('vae_tiling');
      const vae = new AutoencoderKL(CONFIG);
      vae.loadStateDict(g.stateDict());
      vae.enableTiling({ tileSampleSize: Number(g.metadata[`tile/${name}`]) });
      const x = g.tensor(`input/${name}`);
      const out = T.noGrad(() => {
        if (name.startsWith('dec')) return vae.decode(x);
        const dist = vae.encode(x);
        return T.concat([dist.mean, dist.logvar], 1);
      });
      const want = g.host(`output/${name}`);
      expect([...out.shape]).toEqual(want.shape);
      const got = await out.data();
      expectClose(got, want.data, 1e-4, `vae_tiling ${name}`);
      // The tiles change the result: the golden is not the untiled one (so this case really tiles).
      expect(relMax(want.data as Float32Array, g.host(`untiled/${name}`).data as Float32Array)).toBeGreaterThan(1e-2);
      T.dispose([x, out]);
      vae.dispose();
    });
  }

  it('untiled below the tile size, as diffusers (encode and decode unchanged)', async () => {
    const g = new ModelGolden('vae_tiling');
    const vae = new AutoencoderKL(CONFIG);
    vae.loadStateDict(g.stateDict());
    const z = g.tensor('input/dec64');
    const whole = await T.noGrad(() => vae.decode(z)).data();
    vae.enableTiling({ tileSampleSize: 152 }); // latent tile 19 >= both sides of the 19x15 latent
    expect(await T.noGrad(() => vae.decode(z)).data()).toEqual(whole);
    vae.disableTiling();
    vae.dispose();
  });

  it('blend_v / blend_h: ramps over min(extent, both sizes), float16 tiles stay float16', async () => {
    const a = T.tensor(
      Float32Array.from({ length: 2 * 5 * 3 }, (_, i) => i),
      [1, 2, 5, 3],
    );
    const b = T.tensor(
      Float32Array.from({ length: 2 * 2 * 3 }, (_, i) => 100 + i),
      [1, 2, 2, 3],
    );
    // Rows: extent 4 is cut to b's 2 rows; row y = a[3 + y] (1 - y/2) + b[y] y/2.
    const v = await vaeBlend(a, b, 4, 2).data();
    const av = await a.data();
    const bv = await b.data();
    for (let c = 0; c < 2; c++)
      for (let y = 0; y < 2; y++)
        for (let x = 0; x < 3; x++) {
          const want = av[c * 15 + (3 + y) * 3 + x]! * (1 - y / 2) + bv[c * 6 + y * 3 + x]! * (y / 2);
          expect(v[c * 6 + y * 3 + x]).toBeCloseTo(want, 4);
        }
    const h = vaeBlend(T.cast(b, 'float16'), T.cast(b, 'float16'), 1, 3);
    expect(h.dtype).toBe('float16');
  });
});

describe('tile size for an adapter', () => {
  const lavapipe = {
    maxStorageBufferBindingSize: 128 * 2 ** 20,
    maxBufferSize: 2 ** 31,
    convVariant: 'broadcast',
  } as const;

  it("SD's VAE: 1024x768 does not fit lavapipe's limits; the largest tile that does is 224", () => {
    expect(vaeFitsDevice(SD15_VAE, 1024, 768, 2, lavapipe)).toBe(false);
    // The 256-channel upsampling convolution at full resolution: 32 x ceil(256^2 / 32) = 65536 tiles > 65535.
    expect(vaeFitsDevice(SD15_VAE, 256, 256, 2, lavapipe)).toBe(false);
    expect(vaeTileSizeFor(SD15_VAE, 2, lavapipe)).toBe(224);
    expect(vaeTileSizeFor(SD15_VAE, 4, lavapipe)).toBe(224);
    // A larger output tile (register variant) and binding: diffusers' 512 is still one tile too many.
    const gpu = { maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 31, convVariant: 'register' } as const;
    expect(vaeTileSizeFor(SD15_VAE, 2, gpu)).toBe(480);
  });
});
