import { generateSample, type SyntheticSample } from '../synthetic/sample.js';
import type { LeffaExample } from './batch.js';

export type LeffaTask = 'tryon' | 'pose';

/**
 * Leffa examples from the synthetic generator. Try-on: the person, the flat garment as reference, the
 * agnostic mask, the garment region as loss mask and the exact person -> garment flow. Pose transfer: the
 * second view as target, the first view as reference, everything masked, the person foreground as loss mask.
 */
export function syntheticExample(task: LeffaTask, seed: number, height: number, width: number): LeffaExample {
  const s = generateSample({ seed, height, width, poseTransfer: task === 'pose' });
  return exampleFromSample(task, s);
}

export function exampleFromSample(task: LeffaTask, s: SyntheticSample): LeffaExample {
  const { height, width } = s;
  if (task === 'tryon') {
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
    flow: s.poseFlow,
    flowValid: s.poseFlowValid,
  };
}

/** An endless seeded stream of examples: seeds start, start+1, ... */
export class SyntheticLeffaSource {
  private next: number;

  constructor(
    readonly task: LeffaTask,
    readonly height: number,
    readonly width: number,
    readonly firstSeed = 0,
  ) {
    this.next = firstSeed;
  }

  take(n: number): LeffaExample[] {
    return Array.from({ length: n }, () => syntheticExample(this.task, this.next++, this.height, this.width));
  }

  /** Position in the stream, for checkpoints. */
  get position(): number {
    return this.next;
  }

  set position(p: number) {
    this.next = p;
  }
}
