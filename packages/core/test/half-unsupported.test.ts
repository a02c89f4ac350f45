import * as T from '@leffa-webgpu/core';
import { describe, expect, it } from 'vitest';

// This process's device is created without shader-f16, as on an adapter that lacks it.
const device = await T.init({ withoutFeatures: ['shader-f16'] });

describe('float16 on a device without shader-f16', () => {
  it('is refused with an error naming the feature; float32 keeps working and float16 files load as float32', async () => {
    expect(device.hasF16).toBe(false);
    const x = T.tensor([1, 2, 3]);
    const live = T.memoryStats().liveBytes;
    expect(() => x.half()).toThrow(
      /cast: float16 tensors need the adapter's 'shader-f16' feature, which this device lacks/,
    );
    expect(() => T.tensor([1, 2], [2], 'float16')).toThrow(/^tensor: float16 tensors need the adapter's 'shader-f16'/);
    expect(() => T.zeros([2], 'float16')).toThrow(/^zeros: float16 tensors need/);
    expect(() => T.nn.withoutInit(() => new T.nn.Linear(2, 2)).half()).toThrow(/^Linear\.half: float16 tensors need/);
    expect(() => T.tensorFromHalfBits(T.floatToHalf([1]), [1])).toThrow(/^tensorFromHalfBits: float16 tensors need/);
    expect(T.memoryStats().liveBytes).toBe(live);
    const bytes = T.serializeSafetensors({ w: { shape: [3], data: new Float32Array([0.1, 2, -3]), dtype: 'F16' } });
    await expect(T.loadSafetensors(bytes, { dtype: 'keep' })).rejects.toThrow(
      /float16 tensors need the adapter's 'shader-f16'/,
    );
    const w = (await T.loadSafetensors(bytes)).get('w')!;
    expect(w.dtype).toBe('float32');
    expect([...(await T.mul(w, 2).data())]).toEqual([...T.halfToFloat(T.floatToHalf([0.2, 4, -6]))]);
  });
});
