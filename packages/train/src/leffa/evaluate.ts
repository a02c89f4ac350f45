import * as T from '@leffa-webgpu/core';
import { type LeffaModel, leffaSample, warpByFlow } from '@leffa-webgpu/models';
import { tensorToImages } from '../io/images.js';
import { type LeffaBatch, type LeffaExample, toBatch } from './batch.js';
import { flowEndPointError, l1, psnr, ssim } from './metrics.js';

/** Seeds of held-out examples: far from any training pool. */
export const HELD_OUT_SEED = 900_000_000;

export interface EvalResult {
  /** Generated vs ground-truth target, averaged over examples. */
  l1: number;
  psnr: number;
  ssim: number;
  /** Flow end-point error (reference pixels) of each attn1 layer's flow at the probe timestep. */
  flowEpe: { layer: string; height: number; width: number; epe: number }[];
  /** Mean over layers. */
  meanFlowEpe: number;
}

export interface EvalImages {
  generated: Uint8Array[];
  /** The reference warped by the finest layer's flow. */
  warped: Uint8Array[];
}

export interface EvalOptions {
  steps?: number;
  guidanceScale?: number;
  /** Timestep at which the flows are probed (Leffa's loss acts below 500). */
  probeTimestep?: number;
  seed?: number;
}

/**
 * Attention flows of the generative UNet at one timestep: the noisy latent of the ground truth at t, the
 * reference features, and the flow reports of every attn1 layer at >= 1/32 of the image.
 */
function probeFlows(model: LeffaModel, batch: LeffaBatch, t: number, generator: T.Generator) {
  return T.noGrad(() =>
    T.tidy(() => {
      const x0 = model.encodeImage(batch.source, { sample: false });
      const masked = model.encodeImage(T.mul(batch.source, T.sub(1, batch.mask)), { sample: false });
      const ref = model.encodeImage(batch.reference, { sample: false });
      const size = x0.shape.slice(2) as [number, number];
      const noisy = model.scheduler.addNoise(x0, T.randn([...x0.shape], { generator }), t);
      const out = model.predictNoise(
        {
          noisyLatent: noisy,
          maskLatent: T.interpolate(batch.mask, { size, mode: 'nearest' }),
          maskedLatent: masked,
          densepose: T.interpolate(batch.densepose, { size, mode: 'nearest' }),
        },
        t,
        model.referenceFeatures(ref, t),
        { kind: 'flow', tau: 2, minFraction: 1 / 32, imageHeight: batch.height },
      );
      return out.reports;
    }),
  );
}

/**
 * Runs the model on held-out examples: try-on / pose-transfer generation compared with the ground truth,
 * and the attention flow of every Leffa layer compared with the exact ground-truth flow.
 */
export async function evaluateLeffa(model: LeffaModel, examples: LeffaExample[], options: EvalOptions = {}): Promise<{ metrics: EvalResult; images: EvalImages }> {
  const batch = toBatch(examples);
  const { height, width } = batch;
  const generator = new T.Generator(options.seed ?? 1234);
  const generatedT = await leffaSample(
    model,
    { image: batch.source, reference: batch.reference, mask: batch.mask, densepose: batch.densepose },
    { steps: options.steps ?? 20, sampler: 'ddim', guidanceScale: options.guidanceScale ?? 2.5, refAcceleration: true, generator },
  );
  const generated = await tensorToImages(generatedT);
  generatedT.dispose();

  const reports = probeFlows(model, batch, options.probeTimestep ?? 250, generator);
  const flows = await Promise.all(reports.map((r) => r.value.data()));
  const finest = reports.reduce((a, b) => (b.height > a.height ? b : a), reports[0]!);
  const warpedT = T.noGrad(() => warpByFlow(batch.reference, finest));
  const warped = await tensorToImages(warpedT);
  warpedT.dispose();

  const flowEpe = reports.map((r, k) => {
    const per = examples.map((e, b) => {
      if (!e.flow || !e.flowValid) return NaN;
      const n = r.height * r.width * 2;
      return flowEndPointError(flows[k]!.subarray(b * n, (b + 1) * n), r.height, r.width, e.flow, e.flowValid, height, width);
    });
    const ok = per.filter(Number.isFinite);
    // Folder datasets carry no ground-truth flow: their EPE is NaN (null in JSON), not a misleading 0.
    return { layer: r.layer, height: r.height, width: r.width, epe: ok.length ? ok.reduce((a, v) => a + v, 0) / ok.length : NaN };
  });
  T.dispose([reports, batch]);

  const mean = (f: (i: number) => number) => examples.reduce((a, _, i) => a + f(i), 0) / examples.length;
  const metrics: EvalResult = {
    l1: mean((i) => l1(generated[i]!, examples[i]!.source)),
    psnr: mean((i) => psnr(generated[i]!, examples[i]!.source)),
    ssim: mean((i) => ssim(generated[i]!, examples[i]!.source, width, height)),
    flowEpe,
    meanFlowEpe: flowEpe.reduce((a, f) => a + f.epe, 0) / Math.max(flowEpe.length, 1),
  };
  return { metrics, images: { generated, warped } };
}
