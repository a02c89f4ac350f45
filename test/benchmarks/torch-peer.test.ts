// The PyTorch peer of the benchmarks: one runner process per build, set up once, timing a case whenever asked.
import { describe, expect, it } from 'vitest';
import type { BenchCase } from '../../benchmarks/src/case.js';
import { TORCH_PYTHON, TorchPeer } from '../../benchmarks/src/peers/torch.js';

const input = (data: number[], shape: number[]) => ({ data: Float32Array.from(data), shape });
const benchCase = (name: string, torch?: BenchCase['torch']) => ({ name, torch }) as BenchCase;

describe('TorchPeer', () => {
  it('sets every case up once, returns its first result and times it on request, round after round', async () => {
    const peer = await TorchPeer.start(TORCH_PYTHON, [
      {
        c: benchCase('affine', { run: 'return x0 * 2 + x1' }),
        inputs: [input([1, 2, 3], [3]), input([0.5, 0, -1], [3])],
      },
      // A stateful case: its result is the first run's, later runs keep counting.
      {
        c: benchCase('counter', { setup: 'n = [0]', run: 'n[0] += 1\nreturn torch.tensor([float(n[0])])' }),
        inputs: [],
      },
      { c: benchCase('ours only'), inputs: [] },
    ]);
    try {
      expect([...peer.results.get('affine')!.output]).toEqual([2.5, 4, 5]);
      expect([...peer.results.get('counter')!.output]).toEqual([1]);
      expect(peer.results.get('affine')!.version).toMatch(/^1\.13/);
      expect(peer.results.has('ours only')).toBe(false);
      for (let round = 0; round < 2; round++) {
        const ms = await peer.time('counter', 5, 1);
        expect(ms).toHaveLength(5);
        for (const t of ms!) expect(t).toBeGreaterThanOrEqual(0);
      }
      expect(await peer.time('ours only', 5, 1)).toBeNull();
    } finally {
      peer.close();
    }
  });

  it('fails naming the interpreter when it cannot be run', async () => {
    await expect(
      TorchPeer.start('/nonexistent/python3', [{ c: benchCase('any', { run: 'return x0' }), inputs: [] }]),
    ).rejects.toThrow(
      /PyTorch runner \(\/nonexistent\/python3 .*\) could not run \(spawn \/nonexistent\/python3 ENOENT\)/,
    );
  });

  it('fails with the runner and its Python error when a case cannot be set up', async () => {
    await expect(
      TorchPeer.start(TORCH_PYTHON, [
        { c: benchCase('broken', { setup: 'undefined_name + 1', run: 'return x0' }), inputs: [] },
      ]),
    ).rejects.toThrow(
      /PyTorch runner \(.*torch_runner\.py\) exited \(1\): Traceback.*\n[\s\S]*NameError: name 'undefined_name'/,
    );
  });
});
