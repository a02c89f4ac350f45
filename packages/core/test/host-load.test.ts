/**
 * Loading weights straight into host memory: a module offloaded before its weights exist takes the loaders'
 * host tensors (`host: true`) without a device allocation, and `reloadFromHost` then gives exactly the weights a
 * normal load gives: float32 and float16, from PyTorch's .pth and safetensors files, and through checkpoints.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { afterAll, describe, expect, it } from 'vitest';

const golden = (name: string) => fileURLToPath(new URL(`../../../test/golden/out/${name}`, import.meta.url));

await T.init();
const half = T.activeDevice().hasF16;

/** Parameters named as keys of the golden files: 'extra.half' / 'extra.half_t' (F16 in the .pth), 'extra.int32'. */
class Extra extends T.Module {
  constructor() {
    super();
    this.addParameter('half', T.nn.uniformInit([5], 1));
    this.addParameter('half_t', T.nn.uniformInit([3, 2], 1));
    this.addBuffer('int32', T.tensor(Int32Array.from([1, 1]), [2], 'int32'));
  }
}

/** cases_pth.py's Net (conv, bn, fc) and the extra keys of its state dict; weights never initialised. */
class Net extends T.Module {
  readonly conv: T.nn.Conv2d;
  readonly bn: T.nn.BatchNorm2d;
  readonly fc: T.nn.Linear;
  readonly extra: Extra;
  constructor() {
    super();
    this.conv = this.addModule('conv', new T.nn.Conv2d(2, 3, 3));
    this.bn = this.addModule('bn', new T.nn.BatchNorm2d(3));
    this.fc = this.addModule('fc', new T.nn.Linear(12, 5));
    this.extra = this.addModule('extra', new Extra());
  }
}

const build = (dtype: 'float32' | 'float16') => {
  const net = T.nn.withoutInit(() => new Net());
  return dtype === 'float16' ? net.half() : net;
};

/** Every parameter and buffer's bits (float16 as half bits). */
async function bits(m: T.Module): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [name, t] of [...m.namedParameters(), ...m.namedBuffers()]) {
    const v = t.dtype === 'float16' ? await t.halfBits() : t.dtype === 'int32' ? await t.intData() : await t.data();
    out.set(`${name} ${t.dtype}`, Array.from(t.dtype === 'float32' ? new Uint32Array(v.buffer) : v));
  }
  return out;
}

type Load = (path: string, load: T.TensorLoad) => Promise<Map<string, T.Tensor>>;
const FILES: [string, string, Load][] = [
  ['.pth (zip)', 'pth_state_dict.pth', T.loadPth],
  ['.pth (legacy)', 'pth_legacy_state_dict.pth', T.loadPth],
  // The .pth's state dict as safetensors (PyTorch's values, widened to float32 and int32 by the golden script).
  ['safetensors', 'pth_expected.safetensors', T.loadSafetensors],
];

/**
 * A normal load, and a load into the net offloaded first (checked to take no device memory), then reloaded:
 * the same bits. `load` picks the file's float dtypes, `dtype` the net's (a difference is converted).
 */
async function compare(file: string, read: Load, dtype: 'float32' | 'float16', load: T.FloatLoad): Promise<void> {
  const normal = build(dtype);
  const dict = await read(golden(file), load);
  normal.loadStateDict(dict, { strict: false });
  T.dispose([...dict.values()]);

  const placed = build(dtype);
  await T.nn.offloadToHost(placed);
  expect(T.nn.isOffloaded(placed)).toBe(true);
  await T.sync();
  const device = T.activeDevice();
  device.pool.resetPeak();
  const live = T.memoryStats().liveBytes;
  const hostDict = await read(golden(file), { ...load, host: true });
  expect([...hostDict.values()].every((t) => t.isOnHost)).toBe(true);
  const report = placed.loadStateDict(hostDict, { strict: false });
  T.dispose([...hostDict.values()]);
  expect(report.missing).toEqual([]);
  // Nothing was allocated on the device (the peak is still the live figure at the reset), and everything is
  // still in host memory (and readable there).
  expect(T.memoryStats().peakLiveBytes).toBe(live);
  expect(T.nn.isOffloaded(placed)).toBe(true);
  expect(await bits(placed)).toEqual(await bits(normal));
  expect(() => placed.conv.forward(T.zeros([1, 2, 4, 4], dtype))).toThrow(
    /Net\.conv\.weight is in host memory; call nn\.reloadFromHost/,
  );

  T.nn.reloadFromHost(placed);
  expect([...placed.parameters()].some((t) => t.isOnHost)).toBe(false);
  expect(await bits(placed)).toEqual(await bits(normal));
  // The reloaded net computes what the normal one does.
  const x = T.randn([1, 2, 4, 4], { generator: new T.Generator(3) }).to(dtype);
  const run = (m: Net) => T.noGrad(() => m.fc.forward(m.bn.eval().forward(m.conv.forward(x)).flatten(1)));
  const [a, b] = [run(normal), run(placed)];
  expect(await b.data()).toEqual(await a.data());
  T.dispose([x, a, b]);
  normal.dispose();
  placed.dispose();
}

describe('weights loaded straight into host memory', () => {
  for (const [what, file, read] of FILES) {
    it(`${what}: float32 into float32, host then reload == device load, no device memory while loading`, async () => {
      await compare(file, read, 'float32', {});
    });
    it.runIf(half)(`${what}: float16 (F16 as stored, F32 and BF16 rounded by the loader) into float16`, async () => {
      await compare(file, read, 'float16', { dtype: 'float16', bf16: 'float16' });
    });
    it.runIf(half)(`${what}: float32 values into a float16 net (converted on the host == on the device)`, async () => {
      await compare(file, read, 'float16', {});
    });
  }

  it.runIf(half)('half() of an offloaded net converts on the host, as on the device', async () => {
    const load = async () => {
      const net = build('float32');
      const dict = await T.loadPth(golden('pth_state_dict.pth'));
      net.loadStateDict(dict, { strict: false });
      T.dispose([...dict.values()]);
      return net;
    };
    const [onDevice, onHost] = [await load(), await load()];
    await T.nn.offloadToHost(onHost);
    onHost.half();
    onDevice.half();
    expect(T.nn.isOffloaded(onHost)).toBe(true);
    expect(await bits(onHost)).toEqual(await bits(onDevice));
    onDevice.dispose();
    onHost.dispose();
  });

  it('a device value for a parameter in host memory is refused, naming the key; the net is unchanged', async () => {
    const net = build('float32');
    await T.nn.offloadToHost(net.fc);
    const dict = await T.loadPth(golden('pth_state_dict.pth'));
    expect(() => net.loadStateDict(dict, { strict: false })).toThrow(
      /'fc\.weight' is in host memory .* the value given is on the device/,
    );
    T.dispose([...dict.values()]);
    // Nothing was loaded: conv is still unallocated, fc still without values.
    expect(net.conv.weight.storage.allocated).toBe(false);
    await expect(net.fc.weight.data()).rejects.toThrow(/undefined values/);
    net.dispose();
  });

  describe('checkpoints', () => {
    const dir = mkdtempSync(join(tmpdir(), 'host-load-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('openCheckpoint(...).load fills an offloaded part in host memory; reloaded, the saved bits', async () => {
      const saved = build('float32');
      const dict = await T.loadPth(golden('pth_state_dict.pth'));
      saved.loadStateDict(dict, { strict: false });
      T.dispose([...dict.values()]);
      await T.saveCheckpoint(join(dir, 'ckpt'), { model: saved });

      const net = build('float32');
      for (const part of [net.bn, net.fc, net.extra]) await T.nn.offloadToHost(part);
      await T.sync();
      T.activeDevice().pool.resetPeak();
      const live = T.memoryStats().liveBytes;
      await (await T.openCheckpoint(join(dir, 'ckpt'))).load({ model: net });
      // Only conv was allocated (its weight and bias, one buffer each), nothing of the offloaded parts.
      expect(net.conv.parameters().every((t) => t.storage.allocated)).toBe(true);
      expect(T.memoryStats().peakLiveBytes - live).toBeLessThanOrEqual(T.nn.deviceBytes([net.conv]));
      expect([net.bn, net.fc, net.extra].every((m) => T.nn.isOffloaded(m))).toBe(true);
      T.nn.reloadFromHost(net);
      expect(await bits(net)).toEqual(await bits(saved));
      saved.dispose();
      net.dispose();
    });
  });
});
