import * as T from '@leffa-webgpu/core';
import { OPENPOSE_SMALL, type OpenPoseConfig, OpenPoseBody, estimatePose } from '@leffa-webgpu/models';
import { type PoseExample, poseTargets, randomAffine, Rng, warpImage, warpKeypoints } from '@leffa-webgpu/data';
import { TrainerBase } from '../trainer.js';

/** The network input of HWC RGB images: BGR, / 256 - 0.5 (the official preprocessing). */
export function poseInput(images: Uint8Array[], height: number, width: number): Float32Array {
  const plane = height * width;
  const out = new Float32Array(images.length * 3 * plane);
  images.forEach((img, b) => {
    for (let i = 0; i < plane; i++)
      for (let c = 0; c < 3; c++) out[(b * 3 + c) * plane + i] = img[3 * i + 2 - c]! / 256 - 0.5;
  });
  return out;
}

export interface OpenPoseTrainOptions {
  config?: OpenPoseConfig;
  seed?: number;
  lr?: number;
  /** 'adamw' for small models; 'sgd' as the paper (momentum 0.9) with stages 2..6 at 4x the learning rate. */
  optimizer?: 'adamw' | 'sgd';
  augment?: boolean;
}

/**
 * OpenPose training: L2 between every stage's PAFs/heatmaps and the targets (intermediate supervision), on
 * augmented images (rotation, scale, flip with left/right swap). Nothing random runs on the GPU (no generator);
 * a model it builds takes its initial weights from the global generator.
 */
export class OpenPoseTrainer extends TrainerBase {
  protected readonly name = 'OpenPoseTrainer';
  protected override readonly kind = 'openpose';
  readonly model: OpenPoseBody;
  readonly optimizer: T.optim.AdamW | T.optim.SGD;
  readonly generator = null;
  readonly rng: Rng;

  constructor(
    readonly options: OpenPoseTrainOptions = {},
    model?: OpenPoseBody,
  ) {
    super();
    this.model = model ?? new OpenPoseBody(options.config ?? OPENPOSE_SMALL);
    this.rng = new Rng((options.seed ?? 0) ^ 0x2545f491);
    const lr = options.lr ?? 1e-3;
    if (options.optimizer === 'sgd') {
      const named = [...this.model.namedParameters()];
      const later = named.filter(([n]) => /stage[2-9]/.test(n)).map(([, p]) => p);
      const early = named.filter(([n]) => !/stage[2-9]/.test(n)).map(([, p]) => p);
      this.optimizer = new T.optim.SGD([{ params: early }, { params: later, lr: 4 * lr }], {
        lr,
        momentum: 0.9,
        weightDecay: 5e-4,
      });
    } else {
      this.optimizer = new T.optim.AdamW(this.model.parameters(), { lr, weightDecay: 0 });
    }
  }

  step(batch: PoseExample[]): T.Tensor {
    const { height: H, width: W } = batch[0]!;
    const views = batch.map((e) => {
      if (this.options.augment === false) return e;
      const t = randomAffine(this.rng, W, H);
      return { ...e, image: warpImage(e.image, W, H, t), people: e.people.map((p) => warpKeypoints(p, W, H, t)) };
    });
    const targets = views.map((v) => poseTargets(v.people, H, W));
    const { height: h, width: w } = targets[0]!;
    const loss = T.tidy(() => {
      const x = T.tensor(
        poseInput(
          views.map((v) => v.image),
          H,
          W,
        ),
        [batch.length, 3, H, W],
      );
      const heat = T.tensor(concat(targets.map((t) => t.heatmap)), [batch.length, 19, h, w]);
      const paf = T.tensor(concat(targets.map((t) => t.paf)), [batch.length, 38, h, w]);
      const out = this.model.forward(x);
      const terms = out.stages.map((s) => T.add(T.mseLoss(s.paf, paf), T.mseLoss(s.heatmap, heat)));
      const total = terms.reduce((a, b) => T.add(a, b));
      total.backward();
      this.optimizer.step();
      this.optimizer.zeroGrad();
      return total.detach();
    });
    this.stepCount++;
    return loss;
  }

  protected parts(): T.CheckpointParts {
    return { model: this.model, optimizer: this.optimizer };
  }

  /** The network's config, inference box size included: what `loadOpenPose` builds. */
  protected override ownExtra(): Record<string, unknown> {
    return { config: this.model.config };
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * PCK@threshold on single-person images: a keypoint is correct when the detected person's keypoint lies
 * within threshold x torso length (neck to mid-hip) of the truth; undetected keypoints count as wrong. The
 * network sees each example at its own resolution (boxsize = its height, scale 1), as in training.
 */
export async function pck(model: OpenPoseBody, examples: PoseExample[], threshold = 0.2): Promise<number> {
  let correct = 0;
  let total = 0;
  for (const e of examples) {
    const result = await estimatePose(
      model,
      { width: e.width, height: e.height, data: e.image },
      { scales: [1], boxsize: e.height },
    );
    const truth = e.people[0]!;
    const neck = truth[1]!;
    const hip = { x: (truth[8]!.x + truth[11]!.x) / 2, y: (truth[8]!.y + truth[11]!.y) / 2 };
    const torso = Math.hypot(neck.x - hip.x, neck.y - hip.y);
    const best = result.people.sort(
      (a, b) => b.keypoints.filter((k) => k[2] > 0).length - a.keypoints.filter((k) => k[2] > 0).length,
    )[0];
    truth.forEach((k, i) => {
      if (!k.visible) return;
      total++;
      const p = best?.keypoints[i];
      if (p && p[2] > 0 && Math.hypot(p[0] - k.x, p[1] - k.y) <= threshold * torso) correct++;
    });
  }
  return total ? correct / total : 0;
}
