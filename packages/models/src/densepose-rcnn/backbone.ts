import * as T from '@leffa-webgpu/core';

/**
 * detectron2's ResNet + FPN backbone (modeling/backbone/{resnet,fpn}.py) as `build_resnet_fpn_backbone` builds it
 * for DensePose R-CNN: FrozenBatchNorm everywhere (RESNETS.NORM), the stride of each stage's first block in its 1x1
 * conv (RESNETS.STRIDE_IN_1X1, the MSRA layout), no dilation, one group; FPN of 256 channels without norm, top-down
 * nearest 2x upsampling with sums, and LastLevelMaxPool (p6 = p5 subsampled by 2). Key names are detectron2's,
 * under `backbone.`: `bottom_up.stem.conv1.{weight,norm.*}`, `bottom_up.res2.0.{shortcut,conv1,conv2,conv3}...`,
 * `fpn_lateral2..5`, `fpn_output2..5`.
 */
export interface ResNetFPNConfig {
  /** Bottleneck blocks in res2..res5 ([3, 4, 6, 3] = ResNet-50). */
  blocks: [number, number, number, number];
  /** Stem output channels (64). */
  stem: number;
  /** res2's output channels (256), doubled per stage. */
  res2Out: number;
  /** res2's bottleneck width (64), doubled per stage. */
  bottleneck: number;
  /** RESNETS.STRIDE_IN_1X1 (true for the MSRA ImageNet weights detectron2's configs start from). */
  strideInOneByOne: boolean;
  /** FPN.OUT_CHANNELS (256). */
  fpnOut: number;
}

export const RESNET50_FPN: ResNetFPNConfig = {
  blocks: [3, 4, 6, 3],
  stem: 64,
  res2Out: 256,
  bottleneck: 64,
  strideInOneByOne: true,
  fpnOut: 256,
};

/** detectron2's FrozenBatchNorm2d: fixed affine x * w / sqrt(var + eps) + (b - mean * w / sqrt(var + eps)); all four are buffers. */
export class FrozenBatchNorm2d extends T.Module implements T.nn.TensorModule {
  readonly weight: T.Tensor;
  readonly bias: T.Tensor;
  readonly running_mean: T.Tensor;
  readonly running_var: T.Tensor;

  constructor(
    readonly channels: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.addBuffer('weight', T.ones([channels]));
    this.bias = this.addBuffer('bias', T.zeros([channels]));
    this.running_mean = this.addBuffer('running_mean', T.zeros([channels]));
    this.running_var = this.addBuffer('running_var', T.ones([channels]));
  }

  forward(x: T.Tensor): T.Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.channels) {
      throw new Error(`FrozenBatchNorm2d: expected [N, ${this.channels}, H, W], got ${T.formatShape(x.shape)}`);
    }
    const scale = T.mul(this.weight, T.rsqrt(T.add(this.running_var, this.eps)));
    const shift = T.sub(this.bias, T.mul(this.running_mean, scale));
    return T.add(T.mul(x, T.reshape(scale, [1, -1, 1, 1])), T.reshape(shift, [1, -1, 1, 1]));
  }
}

/** detectron2.layers.Conv2d with FrozenBN: a bias-free conv and its `norm` child (keys `weight`, `norm.*`). */
export class ConvNorm extends T.Module implements T.nn.TensorModule {
  readonly weight: T.Tensor;
  readonly norm: FrozenBatchNorm2d;

  constructor(
    inC: number,
    outC: number,
    kernel: number,
    readonly options: { stride?: number; padding?: number } = {},
  ) {
    super();
    this.weight = this.addParameter(
      'weight',
      T.mul(T.randn([outC, inC, kernel, kernel]), Math.sqrt(2 / (inC * kernel * kernel))),
    );
    this.norm = this.addModule('norm', new FrozenBatchNorm2d(outC));
  }

  forward(x: T.Tensor): T.Tensor {
    return this.norm.forward(
      T.conv2d(x, this.weight, undefined, { stride: this.options.stride ?? 1, padding: this.options.padding ?? 0 }),
    );
  }
}

/** detectron2's BottleneckBlock: 1x1, 3x3, 1x1 with FrozenBN, projection `shortcut` when the width changes. */
export class BottleneckBlock extends T.Module implements T.nn.TensorModule {
  readonly shortcut: ConvNorm | null;
  readonly conv1: ConvNorm;
  readonly conv2: ConvNorm;
  readonly conv3: ConvNorm;

  constructor(inC: number, outC: number, mid: number, stride: number, strideInOneByOne: boolean) {
    super();
    this.shortcut = inC !== outC ? this.addModule('shortcut', new ConvNorm(inC, outC, 1, { stride })) : null;
    const [s1, s3] = strideInOneByOne ? [stride, 1] : [1, stride];
    this.conv1 = this.addModule('conv1', new ConvNorm(inC, mid, 1, { stride: s1 }));
    this.conv2 = this.addModule('conv2', new ConvNorm(mid, mid, 3, { stride: s3, padding: 1 }));
    this.conv3 = this.addModule('conv3', new ConvNorm(mid, outC, 1));
  }

  forward(x: T.Tensor): T.Tensor {
    let out = T.relu(this.conv1.forward(x));
    out = T.relu(this.conv2.forward(out));
    out = this.conv3.forward(out);
    return T.relu(T.add(out, this.shortcut ? this.shortcut.forward(x) : x));
  }
}

/** The stem: conv1 7x7 stride 2 with FrozenBN, ReLU, 3x3 stride-2 max-pool (stride 4). */
export class BasicStem extends T.Module implements T.nn.TensorModule {
  readonly conv1: ConvNorm;
  constructor(out: number) {
    super();
    this.conv1 = this.addModule('conv1', new ConvNorm(3, out, 7, { stride: 2, padding: 3 }));
  }

  forward(x: T.Tensor): T.Tensor {
    return T.maxPool2d(T.relu(this.conv1.forward(x)), { kernelSize: 3, stride: 2, padding: 1 });
  }
}

export type ResNetFeatures = { res2: T.Tensor; res3: T.Tensor; res4: T.Tensor; res5: T.Tensor };

/** detectron2's ResNet (bottom_up): stem then res2..res5 at strides 4, 8, 16, 32. */
export class D2ResNet extends T.Module {
  readonly stem: BasicStem;
  readonly stages: T.nn.Sequential[];

  constructor(readonly config: ResNetFPNConfig) {
    super();
    this.stem = this.addModule('stem', new BasicStem(config.stem));
    let inC = config.stem;
    this.stages = config.blocks.map((n, i) => {
      const outC = config.res2Out * 2 ** i;
      const mid = config.bottleneck * 2 ** i;
      const blocks = Array.from(
        { length: n },
        (_, b) =>
          new BottleneckBlock(b === 0 ? inC : outC, outC, mid, b === 0 && i > 0 ? 2 : 1, config.strideInOneByOne),
      );
      inC = outC;
      return this.addModule(`res${i + 2}`, new T.nn.Sequential(...blocks));
    });
  }

  /** Widths of res2..res5. */
  get outChannels(): number[] {
    return this.config.blocks.map((_, i) => this.config.res2Out * 2 ** i);
  }

  forward(x: T.Tensor): ResNetFeatures {
    if (x.rank !== 4 || x.shape[1] !== 3)
      throw new Error(`D2ResNet: expected an image batch [N, 3, H, W], got ${T.formatShape(x.shape)}`);
    const outs: T.Tensor[] = [];
    let h = this.stem.forward(x);
    for (const stage of this.stages) outs.push((h = stage.forward(h)));
    return { res2: outs[0]!, res3: outs[1]!, res4: outs[2]!, res5: outs[3]! };
  }
}

export type FPNFeatures = { p2: T.Tensor; p3: T.Tensor; p4: T.Tensor; p5: T.Tensor; p6: T.Tensor };
export const FPN_LEVELS = ['p2', 'p3', 'p4', 'p5', 'p6'] as const;
/** Strides of p2..p6. */
export const FPN_STRIDES = [4, 8, 16, 32, 64] as const;

/** detectron2's FPN over the ResNet (module `backbone`): p2..p5 from laterals and top-down sums, p6 by LastLevelMaxPool. */
export class ResNetFPN extends T.Module {
  readonly bottom_up: D2ResNet;
  readonly lateral: T.nn.Conv2d[];
  readonly output: T.nn.Conv2d[];
  /** FPN's size_divisibility: the input's height and width must be multiples of it (the model pads images to it). */
  static readonly SIZE_DIVISIBILITY = 32;

  constructor(readonly config: ResNetFPNConfig = RESNET50_FPN) {
    super();
    this.bottom_up = this.addModule('bottom_up', new D2ResNet(config));
    const widths = this.bottom_up.outChannels;
    // detectron2 registers lateral then output per level, from the coarsest: fpn_lateral5, fpn_output5, ...
    this.lateral = [];
    this.output = [];
    for (let i = 3; i >= 0; i--) {
      this.lateral[i] = this.addModule(`fpn_lateral${i + 2}`, new T.nn.Conv2d(widths[i]!, config.fpnOut, 1));
      this.output[i] = this.addModule(
        `fpn_output${i + 2}`,
        new T.nn.Conv2d(config.fpnOut, config.fpnOut, 3, { padding: 1 }),
      );
    }
  }

  forward(x: T.Tensor): FPNFeatures {
    const d = ResNetFPN.SIZE_DIVISIBILITY;
    if (x.rank !== 4 || x.shape[2]! % d !== 0 || x.shape[3]! % d !== 0) {
      throw new Error(
        `ResNetFPN: expected [N, 3, H, W] with H and W multiples of ${d} (detectron2 pads to FPN's size divisibility), got ${T.formatShape(x.shape)}`,
      );
    }
    const f = this.bottom_up.forward(x);
    const res = [f.res2, f.res3, f.res4, f.res5];
    let prev = this.lateral[3]!.forward(res[3]!);
    const ps: T.Tensor[] = [this.output[3]!.forward(prev)];
    for (let i = 2; i >= 0; i--) {
      prev = T.add(this.lateral[i]!.forward(res[i]!), T.upsampleNearest2x(prev));
      ps.unshift(this.output[i]!.forward(prev));
    }
    const p6 = T.maxPool2d(ps[3]!, { kernelSize: 1, stride: 2 });
    return { p2: ps[0]!, p3: ps[1]!, p4: ps[2]!, p5: ps[3]!, p6 };
  }
}
