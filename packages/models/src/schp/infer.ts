import * as T from '@leffa-webgpu/core';
import { SCHP_LABEL_SETS, type SCHPLabelSet, flipPermutation } from './labels.js';
import type { SCHPNetwork } from './network.js';

export interface ParseOptions {
  /** Input size and flip pairs; default by class count (20 LIP, 18 ATR, 7 Pascal-Person-Part). */
  labelSet?: SCHPLabelSet;
  /** Network input [height, width], overriding the label set's (473x473 LIP, 512x512 ATR/Pascal). */
  inputSize?: [number, number];
  /** Average with the prediction of the mirrored input, left/right channels swapped (evaluate.py; default false). */
  flip?: boolean;
  /** Input scales averaged (evaluate.py's multi_scales; default [1]). */
  scales?: number[];
}

export interface ParseResult {
  /** Fused-head logits at the image's resolution, [C, H, W]. */
  logits: T.Tensor;
  /** argmax over classes, int32 [H, W]. */
  labels: T.Tensor;
}

// ImageNet statistics in BGR order, as SCHP's transforms (the backbone was trained on BGR input).
const BGR_MEAN = [0.406, 0.456, 0.485];
const BGR_STD = [0.225, 0.224, 0.229];

/**
 * The person-box similarity transform of simple_extractor.py: the whole image ([0, 0, w-1, h-1]) widened or
 * heightened to the input's aspect ratio, its centre on the input's centre, scale (inW - 1) / boxWidth
 * (get_affine_transform with rotation 0 reduces to this). Maps image pixel (x, y) to input pixel
 * (k x + tx, k y + ty).
 */
export function personBoxTransform(
  height: number,
  width: number,
  inputSize: [number, number],
): { k: number; tx: number; ty: number } {
  const [inH, inW] = inputSize;
  const aspect = inW / inH;
  let bw = width - 1;
  let bh = height - 1;
  const cx = bw / 2;
  const cy = bh / 2;
  if (bw > aspect * bh) bh = bw / aspect;
  else if (bw < aspect * bh) bw = bh * aspect;
  const k = (inW - 1) / bw;
  return { k, tx: (inW - 1) / 2 - k * cx, ty: (inH - 1) / 2 - k * cy };
}

/**
 * cv2.warpAffine with INTER_LINEAR and a zero border for an axis-aligned scale + shift: output pixel (u, v)
 * samples the source at ((u - tx) / k, (v - ty) / k). grid_sample with align_corners=true addresses pixel
 * centres as cv2 does, and its zero padding blends the border the same way.
 */
function warp(x: T.Tensor, outH: number, outW: number, k: number, tx: number, ty: number): T.Tensor {
  const [N, , H, W] = x.shape as [number, number, number, number];
  const grid = new Float32Array(N * outH * outW * 2);
  // align_corners=true normalisation; a 1-pixel side maps everything to its centre.
  const nx = (s: number) => (W > 1 ? (2 * s) / (W - 1) - 1 : 0);
  const ny = (s: number) => (H > 1 ? (2 * s) / (H - 1) - 1 : 0);
  for (let v = 0; v < outH; v++) {
    const gy = ny((v - ty) / k);
    for (let u = 0; u < outW; u++) {
      const i = 2 * (v * outW + u);
      grid[i] = nx((u - tx) / k);
      grid[i + 1] = gy;
    }
  }
  for (let n = 1; n < N; n++) grid.copyWithin(n * outH * outW * 2, 0, outH * outW * 2);
  return T.gridSample(x, T.tensor(grid, [N, outH, outW, 2]), {
    mode: 'bilinear',
    paddingMode: 'zeros',
    alignCorners: true,
  });
}

function defaultLabelSet(numClasses: number): SCHPLabelSet | undefined {
  return Object.values(SCHP_LABEL_SETS).find((s) => s.labels.length === numClasses);
}

/**
 * Human parsing of one image as SCHP's simple_extractor.py (plus evaluate.py's flip and multi-scale testing):
 * image RGB [3, H, W] or [1, 3, H, W] in [0, 1] -> aspect-preserving warp to the input size (black border) ->
 * BGR, ImageNet-normalised -> per scale: bilinear (align_corners) rescale, network, flip average of the fused
 * logits -> upsampled to the input size (align_corners) and averaged over scales -> warped back to the image
 * -> argmax. The warps use gridSample; the official code warps with cv2 (fixed-point 1/32-pixel weights).
 */
export function parseHuman(model: SCHPNetwork, image: T.Tensor, options: ParseOptions = {}): ParseResult {
  // Training mode would use batch statistics of this one image and drop channels.
  if (model.training) throw new Error('parseHuman: the model is in training mode; call model.eval() first');
  return parseHumanWith((x) => model.forward(x)[0][1], model.config.numClasses, image, options);
}

/**
 * parseHuman around any SCHP-like network: `network(x)` maps the normalised BGR input [N, 3, h, w] to the fused
 * head's logits [N, numClasses, h', w'] (e.g. an ONNX export of the network run by `OnnxGraph`).
 */
export function parseHumanWith(
  network: (x: T.Tensor) => T.Tensor,
  numClasses: number,
  image: T.Tensor,
  options: ParseOptions = {},
): ParseResult {
  const op = 'parseHuman';
  const batched = image.rank === 4;
  if (!((image.rank === 3 && image.shape[0] === 3) || (batched && image.shape[0] === 1 && image.shape[1] === 3))) {
    throw new Error(`${op}: expected an RGB image [3, H, W] or [1, 3, H, W], got ${T.formatShape(image.shape)}`);
  }
  const set = options.labelSet ?? defaultLabelSet(numClasses);
  if (set && set.labels.length !== numClasses) {
    throw new Error(`${op}: label set '${set.name}' has ${set.labels.length} classes, the model ${numClasses}`);
  }
  const inputSize = options.inputSize ?? set?.inputSize;
  if (!inputSize) throw new Error(`${op}: no label set for ${numClasses} classes; pass options.inputSize`);
  const [inH, inW] = inputSize;
  const [H, W] = image.shape.slice(-2) as [number, number];
  if (H < 2 || W < 2 || inH < 2 || inW < 2)
    throw new Error(`${op}: image ${H}x${W} and input ${inH}x${inW} must be at least 2x2`);
  const scales = options.scales ?? [1];
  if (scales.length === 0 || scales.some((s) => !(s > 0)))
    throw new Error(`${op}: scales must be positive, got [${scales.join(', ')}]`);
  const pairs = set?.flipPairs ?? [];
  const flip = options.flip ?? false;

  return T.noGrad(() =>
    T.tidy(() => {
      const perm = flip ? T.tensor(Int32Array.from(flipPermutation(numClasses, pairs))) : null;
      const x = schpInputRaw(image, inputSize);
      let fused: T.Tensor | null = null;
      for (const s of scales) {
        const xs =
          s === 1
            ? x
            : T.interpolate(x, {
                size: [Math.floor(inH * s), Math.floor(inW * s)],
                mode: 'bilinear',
                alignCorners: true,
              });
        // The mirrored copy rides in the same batch, as evaluate.py does.
        let out = network(perm ? T.concat([xs, T.flip(xs, [3])], 0) : xs);
        if (out.rank !== 4 || out.shape[1] !== numClasses)
          throw new Error(`${op}: the network gave ${T.formatShape(out.shape)}, expected [N, ${numClasses}, h, w]`);
        if (perm) {
          const [plain, mirrored] = T.split(out, 1, 0) as [T.Tensor, T.Tensor];
          out = T.mul(T.add(plain, T.flip(T.indexSelect(mirrored, 1, perm), [3])), 0.5);
        }
        const up = T.mul(
          T.interpolate(out, { size: [inH, inW], mode: 'bilinear', alignCorners: true }),
          1 / scales.length,
        );
        fused = fused ? T.add(fused, up) : up;
      }
      return warpBack(fused!, H, W, inputSize);
    }),
  );
}

function schpInputRaw(image: T.Tensor, inputSize: [number, number]): T.Tensor {
  const [H, W] = image.shape.slice(-2) as [number, number];
  const rgb = image.rank === 4 ? image : T.unsqueeze(image, 0);
  const { k, tx, ty } = personBoxTransform(H, W, inputSize);
  // Warp first, normalise after: the border is a black pixel, as cv2's borderValue 0 on the uint8 image.
  const warped = T.flip(warp(rgb, inputSize[0], inputSize[1], k, tx, ty), [1]);
  return T.div(T.sub(warped, T.tensor(BGR_MEAN, [1, 3, 1, 1])), T.tensor(BGR_STD, [1, 3, 1, 1]));
}

/** Logits at the input size [1, C, inH, inW] -> warped back to the image and argmax. */
function warpBack(logits: T.Tensor, H: number, W: number, inputSize: [number, number]): ParseResult {
  const { k, tx, ty } = personBoxTransform(H, W, inputSize);
  // The inverse transform: image pixel (x, y) reads input pixel (k x + tx, k y + ty).
  const back = warp(logits, H, W, 1 / k, -tx / k, -ty / k);
  return { logits: T.squeeze(back, 0), labels: T.squeeze(T.argmax(back, 1), 0) };
}

/**
 * parseHuman in two halves around a network that runs asynchronously (e.g. `OnnxGraph.runAsync`):
 * `schpInput(image, inputSize)` gives the network input [1, 3, inH, inW] (person-box warp, BGR, normalised), and
 * `schpOutput(fused, image, inputSize)` upsamples the fused logits [1, C, h, w] to the input size (align_corners),
 * warps them back to the image and takes the argmax (scale 1, no flip).
 */
export function schpInput(image: T.Tensor, inputSize: [number, number]): T.Tensor {
  const [H, W] = image.shape.slice(-2) as [number, number];
  if (
    !(
      (image.rank === 3 && image.shape[0] === 3) ||
      (image.rank === 4 && image.shape[0] === 1 && image.shape[1] === 3)
    ) ||
    H < 2 ||
    W < 2
  ) {
    throw new Error(
      `schpInput: expected an RGB image [3, H, W] or [1, 3, H, W] of at least 2x2, got ${T.formatShape(image.shape)}`,
    );
  }
  return T.noGrad(() => T.tidy(() => schpInputRaw(image, inputSize)));
}

export function schpOutput(
  fused: T.Tensor,
  image: T.Tensor,
  inputSize: [number, number],
  numClasses: number,
): ParseResult {
  if (fused.rank !== 4 || fused.shape[0] !== 1 || fused.shape[1] !== numClasses) {
    throw new Error(`parseHuman: the network gave ${T.formatShape(fused.shape)}, expected [1, ${numClasses}, h, w]`);
  }
  const [H, W] = image.shape.slice(-2) as [number, number];
  return T.noGrad(() =>
    T.tidy(() =>
      warpBack(T.interpolate(fused, { size: inputSize, mode: 'bilinear', alignCorners: true }), H, W, inputSize),
    ),
  );
}
