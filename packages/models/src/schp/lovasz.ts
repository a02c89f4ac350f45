import {
  LOVASZ_SCAN_BLOCK,
  lovaszBlockGrid,
  lovaszClassGrid,
  lovaszCombineKernel,
  lovaszElementGrid,
  lovaszGradKernel,
  lovaszKeysKernel,
  lovaszOffsetsKernel,
  lovaszScanKernel,
  nextPowerOfTwo,
} from '@leffa-webgpu/kernels-wgsl';
import * as T from '@leffa-webgpu/core';

const { defineOp, emptyTensor, formatShape, launch, map, reshape, sizeOf, sortPairsInPlace, sum, zeros } = T;
type Tensor = T.Tensor;

export interface LovaszSoftmaxOptions {
  /** Average over the classes present in the labels (default), or over all classes. */
  classes?: 'present' | 'all';
  /** Label of pixels to leave out (default 255, as SCHP). */
  ignoreIndex?: number;
}

interface Config {
  classes: 'present' | 'all';
  ignoreIndex: number;
}

const lovaszOp = defineOp('lovasz_softmax', {
  forward: (ctx, probas: Tensor, labels: Tensor, cfg: Config) => {
    const op = 'lovaszSoftmax';
    if (probas.dtype !== 'float32') throw new Error(`${op}: probas must be float32, got ${probas.dtype}`);
    if (labels.dtype !== 'int32') throw new Error(`${op}: labels must be int32, got ${labels.dtype}`);
    const expected = [probas.shape[0], ...probas.shape.slice(2)];
    if (probas.rank < 2 || labels.shape.join() !== expected.join()) {
      throw new Error(
        `${op}: probas ${formatShape(probas.shape)} and labels ${formatShape(labels.shape)} do not match (expected [N, C, H, W] and [N, H, W])`,
      );
    }
    if (cfg.classes !== 'present' && cfg.classes !== 'all')
      throw new Error(`${op}: classes must be 'present' or 'all', got '${cfg.classes}'`);
    const C = probas.shape[1]!;
    const HW = sizeOf(probas.shape.slice(2));
    const P = labels.size;
    const grad = emptyTensor(probas.shape, 'float32', op);
    const coef = zeros([C]);
    ctx.save({ grad, coef });
    if (P === 0 || C === 0) return zeros([]);
    const L = nextPowerOfTwo(P);
    const block = Math.min(L, LOVASZ_SCAN_BLOCK);
    const blocks = (C * L) / block;
    const uniforms = { P, C, HW, L, ignore: cfg.ignoreIndex, block };
    const pairs = emptyTensor([C, L, 2], 'int32', op);
    launch(lovaszKeysKernel(), [probas, labels], [pairs], uniforms, lovaszElementGrid(C * L));
    sortPairsInPlace(pairs, C, L);
    const cum = emptyTensor([C, L], 'int32', op);
    const totals = emptyTensor([blocks], 'int32', op);
    const gts = emptyTensor([C], 'int32', op);
    launch(lovaszScanKernel(), [pairs, labels], [cum, totals], uniforms, lovaszBlockGrid(blocks));
    launch(lovaszOffsetsKernel(), [], [totals, gts], uniforms, lovaszClassGrid(C));
    const contrib = emptyTensor([C, L], 'float32', op);
    launch(
      lovaszGradKernel(),
      [pairs, labels, probas, cum, totals, gts],
      [contrib, grad],
      uniforms,
      lovaszElementGrid(C * L),
    );
    const perClass = sum(contrib, 1);
    const loss = emptyTensor([], 'float32', op);
    launch(lovaszCombineKernel(cfg.classes === 'all'), [perClass, gts], [loss, coef], { C }, [1, 1, 1]);
    return loss;
  },
  backward: ({ args: [probas], saved: { grad, coef } }, g) => {
    const perClass = reshape(coef, [1, probas.shape[1]!, ...probas.shape.slice(2).map(() => 1)]);
    return [map('lovaszSoftmax.backward', 'a * b * c', [grad, perClass, g]), null];
  },
});

/**
 * Lovasz-softmax loss (Berman et al., "The Lovasz-Softmax loss", CVPR 2018) as SCHP uses it: probas
 * [N, C, H, W] (softmax outputs), int32 labels [N, H, W]; pixels labelled ignoreIndex are left out. Per
 * class, the pixel errors |fg - p| are sorted in descending order on the GPU (bitonic sort) and dotted with
 * the gradient of the Lovasz extension of the Jaccard loss; the result is averaged over the present classes
 * (or all). Its gradient w.r.t. probas is that Lovasz extension gradient (times -sign(fg - p)).
 */
export function lovaszSoftmax(probas: Tensor, labels: Tensor, options: LovaszSoftmaxOptions = {}): Tensor {
  return lovaszOp(probas, labels, { classes: options.classes ?? 'present', ignoreIndex: options.ignoreIndex ?? 255 });
}
