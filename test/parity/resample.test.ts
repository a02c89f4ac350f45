import * as T from '@leffa-webgpu/core';
import { expect, it } from 'vitest';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

const device = await T.init();

const OPS: Record<string, OpAdapter> = {
  interpolate: ([x], a) => T.interpolate(x!, a),
  grid_sample: ([x, g], a) => T.gridSample(x!, g!, a),
  avg_pool2d: ([x], a) => T.avgPool2d(x!, a as T.AvgPool2dOptions),
  adaptive_avg_pool2d: ([x], a) => T.adaptiveAvgPool2d(x!, a.size),
  max_pool2d: ([x], a) => T.maxPool2d(x!, a as T.MaxPool2dOptions),
};

replayGoldenGroup('resample', OPS);

it.runIf(device.report.features.includes('timestamp-query'))(
  'nearest upsampling by whole factors, twice across, runs on its own kernels forward and backward',
  async () => {
    const kernels = async (shape: number[], size: [number, number]) => {
      const times = await device.profile(async () => {
        const x = T.randn(shape);
        x.requiresGrad = true;
        const y = T.interpolate(x, { size, mode: 'nearest' });
        T.sum(y).backward();
        await x.grad!.data();
        T.dispose([x.grad!, x, y]);
      });
      return [...times.keys()];
    };
    const keys = await kernels([2, 3, 4, 8], [12, 16]);
    expect(keys).toContain('resample:nearest:3x2');
    expect(keys).toContain('resample:blocksum:3x2');
    expect(keys.filter((k) => k === 'resample:1' || k.startsWith('matmul'))).toEqual([]);
    // Three times across, or rows not a multiple of 4: the tables.
    expect(await kernels([2, 3, 4, 8], [8, 24])).toContain('resample:1');
    expect(await kernels([2, 3, 4, 6], [8, 12])).toContain('resample:1');
  },
);
