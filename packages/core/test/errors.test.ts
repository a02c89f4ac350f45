import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

describe('bad input', () => {
  it('names the op and shapes on broadcast mismatches', () => {
    expect(() => T.add(T.zeros([2, 3]), T.zeros([4]))).toThrow('add: shapes [2, 3] and [4] are not broadcastable');
  });

  it('rejects matmul with mismatched inner dims', () => {
    expect(() => T.matmul(T.zeros([2, 3]), T.zeros([4, 5]))).toThrow(
      'matmul: inner dimensions differ: [2, 3] @ [4, 5] (3 vs 4)',
    );
  });

  it('rejects out-of-range axes', () => {
    expect(() => T.sum(T.zeros([2, 3]), 2)).toThrow(
      'sum: axis 2 is out of range for a tensor of rank 2 (expected -2..1)',
    );
    expect(() => T.softmax(T.zeros([2, 3]), -3)).toThrow(/softmax: axis -3 is out of range/);
  });

  it('refuses a tensor over the storage binding limit with a clear error instead of a device error', async () => {
    const limit = T.activeDevice().gpu.limits.maxStorageBufferBindingSize;
    if (limit > 2 ** 28) return; // only adapters with small limits (lavapipe: 128 MiB) can afford the check
    const before = T.memoryStats().liveBytes;
    expect(() => T.full([limit / 4 + 16], 1)).toThrow(
      new RegExp(
        `^\\w+: a tensor of shape \\[${limit / 4 + 16}\\] needs ${limit + 64} bytes, over this adapter's storage binding limit`,
      ),
    );
    // Uploads too: tensor() from host data is refused before the buffer is created.
    expect(() => T.tensor(new Float32Array(limit / 4 + 16))).toThrow(
      new RegExp(`^tensor: a tensor of shape \\[${limit / 4 + 16}\\] needs`),
    );
    expect(T.memoryStats().liveBytes).toBe(before);
    // Far over every limit (8 GiB): refused by the op that allocates, nothing counted as live, the next op unaffected.
    expect(() => T.zeros([2 ** 31])).toThrow(/^zeros: a tensor of shape \[2147483648\] needs 8589934592 bytes/);
    expect(T.memoryStats().liveBytes).toBe(before);
    const ok = T.full([1024], 1); // the device is still usable
    expect((await ok.data())[0]).toBe(1);
    expect(await T.sum(T.ones([3])).item()).toBe(3);
    ok.dispose();
  });

  it('rejects disposed inputs', () => {
    const t = T.zeros([2, 2]);
    t.dispose();
    expect(() => T.exp(t)).toThrow('exp: input 0 (shape [2, 2]) was disposed');
    expect(t.toString()).toContain('disposed');
  });

  it('rejects wrong dtypes', () => {
    const labels = T.tensor(new Int32Array([1, 2]));
    expect(() => T.exp(labels)).toThrow('exp: input 0 has dtype int32, expected float32 or float16');
    expect(() => {
      labels.requiresGrad = true;
    }).toThrow(/only float tensors/);
  });

  it('rejects bad shapes and reshapes', () => {
    expect(() => T.tensor([1, 2, 3], [2, 2])).toThrow('tensor: 3 values do not fill shape [2, 2] (4 elements)');
    expect(() => T.reshape(T.zeros([2, 3]), [4, -1])).toThrow('reshape: cannot reshape [2, 3] (6 elements) to [4, -1]');
    expect(() => T.zeros([2, -1])).toThrow(/invalid shape/);
    expect(() => T.concat([T.zeros([2, 3]), T.zeros([3, 3])], 1)).toThrow(/concat: tensor 1 has shape \[3, 3\]/);
    expect(() => T.permute(T.zeros([2, 3]), [0, 0])).toThrow(/not a permutation/);
    expect(() => T.expand(T.zeros([2, 3]), [4, 3])).toThrow(/expand: cannot expand \[2, 3\] to \[4, 3\]/);
  });

  it('asks for one element in item()', async () => {
    await expect(T.zeros([2]).item()).rejects.toThrow('item: expected a tensor with one element, got shape [2]');
  });

  it('reports out-of-range class targets and indices at the next readback, naming the op and the value', async () => {
    const int = (v: number[]) => T.cast(T.tensor(v, [v.length]), 'int32');
    const logits = T.zeros([3, 4]);
    // In range (and the ignore index) passes; the loss reads back normally.
    expect(await T.crossEntropy(logits, int([0, 3, -100])).item()).toBeCloseTo(Math.log(4), 5);
    await expect(T.crossEntropy(logits, int([1, 4, 0])).item()).rejects.toThrow(
      'crossEntropy: target 4 is out of range (expected 0 <= target < 4 and not the ignore index -100; target shape [3])',
    );
    await expect(T.crossEntropy(logits, int([-1, 0, 0])).item()).rejects.toThrow(
      /crossEntropy: target -1 is out of range/,
    );
    // The error is reported once; the device works normally afterwards.
    expect(await T.sum(T.ones([5])).item()).toBe(5);
    const weight = T.ones([5, 2]);
    await expect(T.embedding(int([0, 7]), weight).data()).rejects.toThrow(
      /embedding: index 7 is out of range \(expected 0 <= index < 5/,
    );
    await expect(T.indexSelect(weight, 0, int([5])).data()).rejects.toThrow(/indexSelect: index 5 is out of range/);
    await expect(T.gather(weight, 1, T.cast(T.tensor([0, 2], [1, 2]), 'int32')).data()).rejects.toThrow(
      /gather: index 2 is out of range \(expected 0 <= index < 2/,
    );
    expect(await T.embedding(int([4, 0]), weight).data()).toEqual(new Float32Array([1, 1, 1, 1]));
  });
});

describe('failed allocations', () => {
  it('an out-of-memory allocation is reported at the next readback naming the op that allocated, and not counted', async () => {
    // WebGPU reports a buffer creation that runs out of memory asynchronously, through an 'out-of-memory' error
    // scope. lavapipe cannot be driven out of memory within its binding limit, so the device answers one
    // creation's scope with an out-of-memory error, as a real failure would.
    const pool = T.activeDevice().pool;
    const real = (pool as unknown as { device: GPUDevice }).device;
    const bytes = 3 * 2 ** 20 + 4096; // a size class nothing else in this file uses
    let failing = false;
    const fake = new Proxy(real, {
      get(target, prop) {
        if (prop === 'createBuffer') {
          return (d: GPUBufferDescriptor) => {
            failing = d.size >= bytes && d.size < bytes * 1.25;
            return target.createBuffer(d);
          };
        }
        if (prop === 'popErrorScope') {
          return async () => {
            const err = await target.popErrorScope();
            return failing ? { message: 'Out of memory (simulated)' } : err;
          };
        }
        const v = Reflect.get(target, prop);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    // A readback of an unrelated op whose tensors are freed again, so the statistics compare exactly.
    const sumOnes = async (n: number) => {
      const [o, s] = T.tidy(() => {
        const o = T.ones([n]);
        return [o, T.sum(o)];
      });
      try {
        return await s.item();
      } finally {
        T.dispose([o, s]);
      }
    };
    (pool as unknown as { device: GPUDevice }).device = fake;
    try {
      await sumOnes(4);
      const before = T.memoryStats();
      const big = T.zeros([bytes / 4]);
      expect(T.memoryStats().liveBytes).toBeGreaterThan(before.liveBytes); // counted until the device reports
      await new Promise((r) => setTimeout(r, 50));
      const after = T.memoryStats();
      expect(after.liveBytes).toBe(before.liveBytes);
      expect(after.liveBuffers).toBe(before.liveBuffers);
      // The next readback, of an unrelated op, names the allocating op, the shape and the size.
      await expect(sumOnes(3)).rejects.toThrow(
        new RegExp(
          `^zeros: a tensor of shape \\[${bytes / 4}\\]: allocating ${bytes} bytes \\(a \\d+-byte buffer\\) failed, out of device memory \\(Out of memory \\(simulated\\)\\)`,
        ),
      );
      big.dispose();
      expect(T.memoryStats()).toEqual(after); // the failed buffer is not pooled either
      expect(await sumOnes(3)).toBe(3); // reported once; the device works on
      // Released before the failure is reported: taken back out of the pool, never handed out again.
      const early = T.zeros([bytes / 4]);
      early.dispose();
      await new Promise((r) => setTimeout(r, 50));
      expect(T.memoryStats().pooledBytes).toBe(after.pooledBytes);
      await expect(sumOnes(3)).rejects.toThrow(/^zeros: a tensor of shape .* out of device memory/);
    } finally {
      (pool as unknown as { device: GPUDevice }).device = real;
    }
    expect(await sumOnes(2)).toBe(2);
  });
});
