import { generateSample, type SyntheticSample } from '../synthetic/sample.js';
import type { LeffaExample } from './batch.js';

export type LeffaTask = 'tryon' | 'pose';

export interface SyntheticExampleOptions {
  /**
   * Pose transfer only: where the background shows in both views (it does not move), the flow is the identity
   * and counts with this weight in the supervised flow loss, a person pixel's counting 1 (default 0: only the
   * person's pixels carry a flow).
   */
  backgroundFlow?: number;
}

/**
 * Leffa examples from the synthetic generator. Try-on: the person, the flat garment as reference, the
 * agnostic mask, the garment region as loss mask and the exact person -> garment flow. Pose transfer: the
 * second view as target, the first view as reference, everything masked, the person foreground as loss mask.
 */
export function syntheticExample(
  task: LeffaTask,
  seed: number,
  height: number,
  width: number,
  options: SyntheticExampleOptions = {},
): LeffaExample {
  const s = generateSample({ seed, height, width, poseTransfer: task === 'pose' });
  return exampleFromSample(task, s, options);
}

export function exampleFromSample(
  task: LeffaTask,
  s: SyntheticSample,
  options: SyntheticExampleOptions = {},
): LeffaExample {
  const { height, width } = s;
  const backgroundFlow = options.backgroundFlow ?? 0;
  if (!(backgroundFlow >= 0))
    throw new Error(`exampleFromSample: backgroundFlow must be a weight >= 0, got ${backgroundFlow}`);
  if (task === 'tryon') {
    if (backgroundFlow > 0)
      throw new Error(
        "exampleFromSample: backgroundFlow is for pose transfer; a try-on's reference (the flat garment) has no background in common with the person",
      );
    return {
      height,
      width,
      source: s.person.image,
      reference: s.garment,
      mask: s.person.agnosticMask,
      densepose: s.person.densepose,
      lossMask: s.person.garmentMask,
      flow: s.garmentFlow,
      flowValid: s.garmentFlowValid,
    };
  }
  if (!s.second || !s.poseFlow || !s.poseFlowValid)
    throw new Error('exampleFromSample: pose transfer needs a sample generated with poseTransfer');
  return {
    height,
    width,
    source: s.second.image,
    reference: s.person.image,
    mask: new Uint8Array(height * width).fill(1),
    densepose: s.second.iuvImage,
    lossMask: s.second.foreground,
    ...(backgroundFlow > 0
      ? withStaticBackground(s.poseFlow, s.poseFlowValid, s.second.parsing, s.person.parsing, width, backgroundFlow)
      : { flow: s.poseFlow, flowValid: s.poseFlowValid }),
  };
}

/**
 * The person's flow plus the identity wherever both views show background (label 0 in both parsings): the
 * generator's background depends on the image position only. Person pixels weigh 1, background ones `weight`.
 */
function withStaticBackground(
  personFlow: Float32Array,
  personValid: Uint8Array,
  targetParsing: Uint8Array,
  referenceParsing: Uint8Array,
  width: number,
  weight: number,
): { flow: Float32Array; flowValid: Uint8Array; flowWeight: Float32Array } {
  const flow = personFlow.slice();
  const flowValid = personValid.slice();
  const flowWeight = new Float32Array(personValid.length);
  for (let i = 0; i < personValid.length; i++) {
    if (personValid[i]) flowWeight[i] = 1;
    else if (targetParsing[i] === 0 && referenceParsing[i] === 0) {
      // Pixel centres at integers, as in the person's flow.
      flow[2 * i] = i % width;
      flow[2 * i + 1] = Math.floor(i / width);
      flowValid[i] = 1;
      flowWeight[i] = weight;
    }
  }
  return { flow, flowValid, flowWeight };
}

/** An endless seeded stream of examples: seeds start, start+1, ... */
export class SyntheticLeffaSource {
  private next: number;

  constructor(
    readonly task: LeffaTask,
    readonly height: number,
    readonly width: number,
    readonly firstSeed = 0,
    readonly options: SyntheticExampleOptions = {},
  ) {
    this.next = firstSeed;
  }

  take(n: number): LeffaExample[] {
    return Array.from({ length: n }, () =>
      syntheticExample(this.task, this.next++, this.height, this.width, this.options),
    );
  }

  /** Position in the stream, for checkpoints. */
  get position(): number {
    return this.next;
  }

  set position(p: number) {
    this.next = p;
  }
}
