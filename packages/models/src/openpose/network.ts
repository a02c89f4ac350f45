import * as T from '@leffa-webgpu/core';

/**
 * The COCO-18 OpenPose body network (Cao et al. 2017; the widely used body_pose_model.pth): a VGG-19 front
 * to a stride-8 feature F, then six stages of two branches, L1 = part affinity fields (38 channels, 19 limbs
 * x (x, y)) and L2 = heatmaps (19 = 18 parts + background). Stage 1 sees F; stages 2..6 see
 * concat[L1, L2, F]. ReLU everywhere except each stage's last convolution, with one exception in the released
 * model: pytorch-openpose's `no_relu_layers` lists `Mconv7_stage6_L1` twice and never `Mconv7_stage6_L2`, so
 * the final heatmaps pass through a ReLU and are non-negative (config `finalHeatmapRelu`).
 *
 * Parameters carry the official file's flat names (conv1_1.weight ... Mconv7_stage6_L2.bias); the
 * `model0.` / `model1_1.` ... prefixed names of the PyTorch port's module layout are mapped on load.
 */
export interface OpenPoseConfig {
  /** Channels of the VGG front, stem to conv4_2 ([64, 128, 256, 512] at full size). */
  vgg: [number, number, number, number];
  /** Channels of F (conv4_3_CPM / conv4_4_CPM: [256, 128]) and of the stage convolutions (128). */
  cpm: [number, number];
  stageWidth: number;
  /** Width of stage 1's 1x1 expansion (512). */
  stage1Expand: number;
  /** Number of stages, 2..6 (6 in the official model). */
  stages: number;
  /** Kernel of stages 2..6 (7 in the official model). */
  refineKernel: number;
  /**
   * ReLU after the last stage's heatmap convolution (Mconv7_stage6_L2 in the released model), as
   * pytorch-openpose's model.py applies it. Only the final output changes; intermediate stages never have it.
   */
  finalHeatmapRelu: boolean;
  /**
   * The person-box height `boxsize` of body.py for this model: at scale s the image is resized to s x boxsize
   * px tall before the network (368 for the released model).
   */
  boxsize: number;
}

export const OPENPOSE_BODY: OpenPoseConfig = {
  vgg: [64, 128, 256, 512],
  cpm: [256, 128],
  stageWidth: 128,
  stage1Expand: 512,
  stages: 6,
  refineKernel: 7,
  finalHeatmapRelu: true,
  boxsize: 368,
};

/**
 * A width/stage-reduced model for tests and training here. The shipped openpose-small was trained without
 * the final heatmap ReLU (its loss saw the raw last-stage heatmaps), so it keeps that behaviour. It was trained
 * on 128x96 people, so its boxsize is 256: body.py's default scale 0.5 shows it 128-px-tall people, as in
 * training, whatever the image resolution (at 368 it would see 184-px people, 1.4x its training scale).
 */
export const OPENPOSE_SMALL: OpenPoseConfig = {
  vgg: [16, 32, 48, 64],
  cpm: [48, 32],
  stageWidth: 32,
  stage1Expand: 64,
  stages: 3,
  refineKernel: 5,
  finalHeatmapRelu: false,
  boxsize: 256,
};

/**
 * A config recorded in a checkpoint trained here before `finalHeatmapRelu` / `boxsize` existed: those were
 * trained without the final ReLU on native-size (128-px-tall by default) people.
 */
export function openPoseConfigFrom(recorded: Partial<OpenPoseConfig> | undefined): OpenPoseConfig {
  if (!recorded) return OPENPOSE_SMALL;
  for (const k of ['vgg', 'cpm', 'stageWidth', 'stage1Expand', 'stages', 'refineKernel'] as const) {
    if (recorded[k] === undefined) throw new Error(`OpenPose config: recorded config lacks '${k}'`);
  }
  return {
    ...(recorded as OpenPoseConfig),
    finalHeatmapRelu: recorded.finalHeatmapRelu ?? false,
    boxsize: recorded.boxsize ?? OPENPOSE_SMALL.boxsize,
  };
}

export const PAF_CHANNELS = 38;
export const HEATMAP_CHANNELS = 19;

interface ConvSpec {
  name: string;
  inC: number;
  outC: number;
  k: number;
  relu: boolean;
}

export interface OpenPoseOutput {
  /** Every stage's (PAF, heatmap) pair, stage 1 first; the last is the prediction. */
  stages: { paf: T.Tensor; heatmap: T.Tensor }[];
}

export class OpenPoseBody extends T.Module {
  private readonly convs = new Map<string, T.nn.Conv2d>();
  private readonly specs: ConvSpec[] = [];

  constructor(readonly config: OpenPoseConfig = OPENPOSE_BODY) {
    super();
    if (config.stages < 2 && config.finalHeatmapRelu)
      throw new Error('OpenPoseBody: finalHeatmapRelu needs at least 2 stages (it follows the last Mconv7)');
    if (!(config.boxsize > 0)) throw new Error(`OpenPoseBody: boxsize must be positive, got ${config.boxsize}`);
    const [c1, c2, c3, c4] = config.vgg;
    const [f1, f2] = config.cpm;
    const w = config.stageWidth;
    const vgg: [string, number, number][] = [
      ['conv1_1', 3, c1],
      ['conv1_2', c1, c1],
      ['conv2_1', c1, c2],
      ['conv2_2', c2, c2],
      ['conv3_1', c2, c3],
      ['conv3_2', c3, c3],
      ['conv3_3', c3, c3],
      ['conv3_4', c3, c3],
      ['conv4_1', c3, c4],
      ['conv4_2', c4, c4],
      ['conv4_3_CPM', c4, f1],
      ['conv4_4_CPM', f1, f2],
    ];
    for (const [name, i, o] of vgg) this.add({ name, inC: i, outC: o, k: 3, relu: true });
    for (const [branch, outC] of [
      [1, PAF_CHANNELS],
      [2, HEATMAP_CHANNELS],
    ] as const) {
      this.add({ name: `conv5_1_CPM_L${branch}`, inC: f2, outC: w, k: 3, relu: true });
      this.add({ name: `conv5_2_CPM_L${branch}`, inC: w, outC: w, k: 3, relu: true });
      this.add({ name: `conv5_3_CPM_L${branch}`, inC: w, outC: w, k: 3, relu: true });
      this.add({ name: `conv5_4_CPM_L${branch}`, inC: w, outC: config.stage1Expand, k: 1, relu: true });
      this.add({ name: `conv5_5_CPM_L${branch}`, inC: config.stage1Expand, outC, k: 1, relu: false });
    }
    const stageIn = PAF_CHANNELS + HEATMAP_CHANNELS + f2;
    for (let s = 2; s <= config.stages; s++) {
      for (const [branch, outC] of [
        [1, PAF_CHANNELS],
        [2, HEATMAP_CHANNELS],
      ] as const) {
        for (let j = 1; j <= 5; j++)
          this.add({
            name: `Mconv${j}_stage${s}_L${branch}`,
            inC: j === 1 ? stageIn : w,
            outC: w,
            k: config.refineKernel,
            relu: true,
          });
        this.add({ name: `Mconv6_stage${s}_L${branch}`, inC: w, outC: w, k: 1, relu: true });
        const relu = branch === 2 && s === config.stages && config.finalHeatmapRelu;
        this.add({ name: `Mconv7_stage${s}_L${branch}`, inC: w, outC, k: 1, relu });
      }
    }
  }

  private add(spec: ConvSpec): void {
    this.specs.push(spec);
    this.convs.set(
      spec.name,
      this.addModule(spec.name, new T.nn.Conv2d(spec.inC, spec.outC, spec.k, { padding: (spec.k - 1) / 2 })),
    );
  }

  /** The stride-8 feature F (VGG front and the two CPM convolutions), with the three 2x2 max pools. */
  features(x: T.Tensor): T.Tensor {
    let h = x;
    for (const s of this.specs.slice(0, 12)) {
      h = T.relu(this.convs.get(s.name)!.forward(h));
      if (s.name === 'conv1_2' || s.name === 'conv2_2' || s.name === 'conv3_4')
        h = T.maxPool2d(h, { kernelSize: 2, stride: 2 });
    }
    return h;
  }

  private branch(names: string[], x: T.Tensor): T.Tensor {
    let h = x;
    for (const name of names) {
      const s = this.specs.find((v) => v.name === name)!;
      h = this.convs.get(name)!.forward(h);
      if (s.relu) h = T.relu(h);
    }
    return h;
  }

  /** Input [N, 3, H, W] (H, W multiples of 8; see preprocess) to every stage's PAFs and heatmaps at stride 8. */
  forward(x: T.Tensor): OpenPoseOutput {
    if (x.rank !== 4 || x.shape[1] !== 3 || x.shape[2]! % 8 !== 0 || x.shape[3]! % 8 !== 0) {
      throw new Error(`OpenPoseBody: expected [N, 3, H, W] with H and W multiples of 8, got ${T.formatShape(x.shape)}`);
    }
    const f = this.features(x);
    const names = (stage: number, branch: 1 | 2) =>
      stage === 1
        ? [1, 2, 3, 4, 5].map((j) => `conv5_${j}_CPM_L${branch}`)
        : [1, 2, 3, 4, 5, 6, 7].map((j) => `Mconv${j}_stage${stage}_L${branch}`);
    const stages: OpenPoseOutput['stages'] = [];
    let input = f;
    for (let s = 1; s <= this.config.stages; s++) {
      const paf = this.branch(names(s, 1), input);
      const heatmap = this.branch(names(s, 2), input);
      stages.push({ paf, heatmap });
      if (s < this.config.stages) input = T.concat([paf, heatmap, f], 1);
    }
    return { stages };
  }
}

/**
 * Official checkpoints come in two key forms: the converted Caffe model's flat names (conv1_1.weight), and
 * the PyTorch port's module layout (model0.conv1_1.weight, model1_1.conv5_1_CPM_L1.weight, ...). This maps the
 * prefixed form to ours (flat); flat keys pass through.
 */
export function openPoseKeys<V>(dict: Map<string, V>): Map<string, V> {
  const out = new Map<string, V>();
  for (const [key, v] of dict) out.set(key.replace(/^model(?:0|\d_\d)\./, ''), v);
  return out;
}
