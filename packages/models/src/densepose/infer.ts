import * as T from '@leffa-webgpu/core';
import { DENSEPOSE_MIN_SIDE, DENSEPOSE_PARTS, type DensePoseHead, type DensePoseOutput } from './network.js';

/** Part index (0 background, 1..24) and the chart coordinates of that part, per pixel. */
export interface IuvTensors {
  /** int32 [N, H, W]. */
  parts: T.Tensor;
  /** [N, H, W], 0 on background. */
  u: T.Tensor;
  v: T.Tensor;
}

/**
 * The IUV maps of network outputs (at whatever size they are): I = argmax of the 25 logits, U and V read from
 * the predicted part's channel (DensePose's inference rule), zero where the prediction is background.
 */
export function iuvFromOutput(out: DensePoseOutput): IuvTensors {
  const { I, U, V } = out;
  if (
    I.rank !== 4 ||
    I.shape[1] !== DENSEPOSE_PARTS + 1 ||
    U.shape.join() !== V.shape.join() ||
    U.shape[1] !== DENSEPOSE_PARTS ||
    U.shape[0] !== I.shape[0] ||
    U.shape.slice(2).join() !== I.shape.slice(2).join()
  ) {
    throw new Error(
      `iuvFromOutput: expected I [N, 25, H, W] and U, V [N, 24, H, W], got I ${T.formatShape(I.shape)}, U ${T.formatShape(U.shape)}, V ${T.formatShape(V.shape)}`,
    );
  }
  const parts = T.argmax(I, 1);
  const pf = T.cast(parts, 'float32');
  // Background (0) picks channel 0 in the one-hot; the foreground mask zeroes it.
  const channel = T.cast(T.clamp(T.sub(pf, 1), 0), 'int32');
  const hot = T.permute(T.oneHot(channel, DENSEPOSE_PARTS), [0, 3, 1, 2]);
  const fg = T.gt(pf, 0);
  return { parts, u: T.mul(T.sum(T.mul(U, hot), [1]), fg), v: T.mul(T.sum(T.mul(V, hot), [1]), fg) };
}

/** An integer pixel rectangle; it may reach outside the image (that part reads as black). */
export interface CropBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface IuvResult {
  width: number;
  height: number;
  /** Part index per pixel, [H * W] row-major (0 background, 1..24 detectron2's parts). */
  parts: Int32Array;
  /** U, V of the predicted part in [0, 1], 0 on background. */
  u: Float32Array;
  v: Float32Array;
}

export interface PredictIuvOptions {
  /**
   * Network input [height, width] the image (or box) is resized to (bilinear); default the box's own size.
   * Fully convolutional: any size from 32 up works, but the training size and aspect work best.
   */
  inputSize?: [number, number];
  /** Predict only inside this person box (see `personCrop`); pixels outside it are background. */
  box?: CropBox;
}

/**
 * Dense correspondence of one image: RGB [3, H, W] (or [1, 3, H, W]) in [0, 1] -> the box (default the whole
 * image) cropped and resized to the input size -> network -> logits and U/V upsampled (bilinear) to the box's
 * pixels -> part = argmax, U/V of that part -> pasted into an H x W map. The model must be in eval mode.
 */
export async function predictIuv(
  model: DensePoseHead,
  image: T.Tensor,
  options: PredictIuvOptions = {},
): Promise<IuvResult> {
  const op = 'predictIuv';
  const batched = image.rank === 4;
  if (!((image.rank === 3 && image.shape[0] === 3) || (batched && image.shape[0] === 1 && image.shape[1] === 3))) {
    throw new Error(
      `${op}: expected an RGB image [3, H, W] or [1, 3, H, W] in [0, 1], got ${T.formatShape(image.shape)}`,
    );
  }
  // Batch norm in training mode would normalise with this single image's statistics.
  if (model.training) throw new Error(`${op}: the model is in training mode; call model.eval() first`);
  const [H, W] = image.shape.slice(-2) as [number, number];
  const box = options.box ?? { x: 0, y: 0, width: W, height: H };
  if (![box.x, box.y, box.width, box.height].every(Number.isInteger) || box.width < 1 || box.height < 1) {
    throw new Error(`${op}: box must have integer x, y and a positive integer size, got ${JSON.stringify(box)}`);
  }
  const [inH, inW] = options.inputSize ?? [box.height, box.width];
  if (inH < DENSEPOSE_MIN_SIDE || inW < DENSEPOSE_MIN_SIDE) {
    throw new Error(
      `${op}: network input ${inH}x${inW} is too small (at least ${DENSEPOSE_MIN_SIDE}x${DENSEPOSE_MIN_SIDE}); pass a larger inputSize`,
    );
  }
  const maps = T.noGrad(() =>
    T.tidy(() => {
      const rgb = batched ? image : T.unsqueeze(image, 0);
      const pad = [
        Math.max(0, -box.x),
        Math.max(0, box.x + box.width - W),
        Math.max(0, -box.y),
        Math.max(0, box.y + box.height - H),
      ] as const;
      const padded = pad.some((p) => p > 0) ? T.pad(rgb, [...pad], 0) : rgb;
      const x0 = box.x + pad[0];
      const y0 = box.y + pad[2];
      let crop =
        x0 === 0 && y0 === 0 && box.width === padded.shape[3] && box.height === padded.shape[2]
          ? padded
          : T.slice(padded, [null, null, { start: y0, end: y0 + box.height }, { start: x0, end: x0 + box.width }]);
      if (inH !== box.height || inW !== box.width) crop = T.interpolate(crop, { size: [inH, inW], mode: 'bilinear' });
      const out = model.forward(crop);
      const up = (t: T.Tensor) => T.interpolate(t, { size: [box.height, box.width], mode: 'bilinear' });
      return iuvFromOutput({ I: up(out.I), U: up(out.U), V: up(out.V) });
    }),
  );
  const [parts, u, v] = await Promise.all([maps.parts.intData(), maps.u.data(), maps.v.data()]);
  T.dispose([maps.parts, maps.u, maps.v]);
  const result: IuvResult = {
    width: W,
    height: H,
    parts: new Int32Array(H * W),
    u: new Float32Array(H * W),
    v: new Float32Array(H * W),
  };
  // Paste the box back, clipped to the image.
  for (let by = 0; by < box.height; by++) {
    const y = box.y + by;
    if (y < 0 || y >= H) continue;
    for (let bx = 0; bx < box.width; bx++) {
      const x = box.x + bx;
      if (x < 0 || x >= W) continue;
      const s = by * box.width + bx;
      const d = y * W + x;
      result.parts[d] = parts[s]!;
      result.u[d] = u[s]!;
      result.v[d] = v[s]!;
    }
  }
  return result;
}

/** A keypoint as OpenPose gives it ([x, y, confidence], confidence 0 = missing) or as {x, y, visible}. */
export type CropKeypoint =
  | readonly [number, number, number]
  | { x: number; y: number; visible?: boolean; score?: number };

export interface PersonCropOptions {
  /** Padding on each side as a fraction of the keypoints' box height and width (default 0.2: keypoints are joints, not the body outline). */
  margin?: number;
  /** The crop's height / width (default 4 / 3, VITON-HD's portrait aspect and the 128x96 training size). */
  aspect?: number;
  /** Keypoints with a confidence at or below this are left out (default 0). */
  minScore?: number;
}

/**
 * The person box for `predictIuv` from body keypoints: the bounding box of the visible keypoints, padded by
 * `margin` on each side, then widened or heightened about its centre to the aspect (never cropped tighter).
 * Integer pixels; the box may reach outside the image (predictIuv reads black there).
 */
export function personCrop(keypoints: readonly CropKeypoint[], options: PersonCropOptions = {}): CropBox {
  const margin = options.margin ?? 0.2;
  const aspect = options.aspect ?? 4 / 3;
  const minScore = options.minScore ?? 0;
  if (!(margin >= 0) || !(aspect > 0))
    throw new Error(`personCrop: margin must be >= 0 and aspect > 0, got margin ${margin}, aspect ${aspect}`);
  const pts: [number, number][] = [];
  for (const k of keypoints) {
    if (Array.isArray(k)) {
      const [x, y, c] = k as readonly [number, number, number];
      if (c > minScore && Number.isFinite(x) && Number.isFinite(y)) pts.push([x, y]);
    } else {
      const p = k as { x: number; y: number; visible?: boolean; score?: number };
      if (
        p.visible !== false &&
        (p.score === undefined || p.score > minScore) &&
        Number.isFinite(p.x) &&
        Number.isFinite(p.y)
      )
        pts.push([p.x, p.y]);
    }
  }
  if (pts.length === 0)
    throw new Error(`personCrop: none of the ${keypoints.length} keypoints is visible; no person to crop`);
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const y0 = Math.min(...ys);
  const y1 = Math.max(...ys);
  // A single keypoint (or a line of them) still gets a box: at least one pixel per side before padding.
  let w = Math.max(1, x1 - x0) * (1 + 2 * margin);
  let h = Math.max(1, y1 - y0) * (1 + 2 * margin);
  if (h / w > aspect) w = h / aspect;
  else h = w * aspect;
  const width = Math.max(1, Math.round(w));
  const height = Math.max(1, Math.round(h));
  return { x: Math.round((x0 + x1) / 2 - width / 2), y: Math.round((y0 + y1) / 2 - height / 2), width, height };
}
