import * as T from '@leffa-webgpu/core';

/**
 * SCHP's human-parsing network (Li et al., "Self-Correction for Human Parsing"; CE2P architecture,
 * networks/AugmentCE2P.py): a dilated ResNet (deep stem, layer4 at stride 1 with dilation 2, output stride 16),
 * a PSP context module, an edge branch on layers 1..3, a decoder with the layer-1 skip, and a fusion head
 * over decoder and edge features.
 *
 * Every normalisation is SCHP's InPlaceABNSync in eval form: batch norm with scale |weight| + eps. The
 * backbone's (`BatchNorm2d = partial(InPlaceABNSync, activation='none')`) has no activation; the heads' apply
 * LeakyReLU(0.01). Keys are the official checkpoint's after stripping DataParallel's `module.` prefix.
 */
export interface SCHPConfig {
  /** Bottlenecks per stage ([3, 4, 23, 3] = ResNet-101). */
  layers: [number, number, number, number];
  /** Stem widths: conv1/conv2 output, conv3 output ([64, 128]). */
  stem: [number, number];
  /** Bottleneck widths per stage; each stage outputs 4x ([64, 128, 256, 512]). */
  planes: [number, number, number, number];
  /** layer4's per-block dilation multipliers on top of dilation 2 (official: (1, 1, 1), i.e. 2 everywhere). */
  multiGrid: number[];
  /** PSP branch and bottleneck width (512) and pooled sizes ([1, 2, 3, 6]). */
  psp: number;
  pspSizes: number[];
  /** Edge branch width (256) and edge classes (2). */
  edge: number;
  edgeClasses: number;
  /** Decoder width (256) and its layer-1 skip width (48). */
  decoder: number;
  decoderLow: number;
  /** Fusion head width (256). */
  fusion: number;
  numClasses: number;
  /**
   * The stem's 3x3 stride-2 max-pool (official: present, output stride 4). Without it every stage runs at twice
   * the resolution (output stride 2): small inputs keep the detail that an official model gets from 473x473.
   */
  stemPool?: boolean;
}

const RESNET101 = {
  layers: [3, 4, 23, 3],
  stem: [64, 128],
  planes: [64, 128, 256, 512],
  multiGrid: [1, 1, 1],
  psp: 512,
  pspSizes: [1, 2, 3, 6],
  edge: 256,
  edgeClasses: 2,
  decoder: 256,
  decoderLow: 48,
  fusion: 256,
} satisfies Omit<SCHPConfig, 'numClasses'>;

const SMALL: SCHPConfig = {
  layers: [1, 1, 1, 1],
  stem: [8, 16],
  planes: [8, 16, 24, 32],
  multiGrid: [1, 1, 1],
  psp: 32,
  pspSizes: [1, 2, 3, 6],
  edge: 16,
  edgeClasses: 2,
  decoder: 16,
  decoderLow: 8,
  fusion: 16,
  numClasses: 20,
};

export const SCHP_CONFIGS = {
  /** The official LIP / ATR / Pascal-Person-Part models (ResNet-101; 20 / 18 / 7 classes). */
  resnet101: { ...RESNET101, numClasses: 20 },
  resnet101_lip: { ...RESNET101, numClasses: 20 },
  resnet101_atr: { ...RESNET101, numClasses: 18 },
  resnet101_pascal: { ...RESNET101, numClasses: 7 },
  /** One bottleneck per stage and reduced widths, for tests and training here (LIP classes). */
  small: SMALL,
  /**
   * The small config without the stem's max-pool (output stride 2): trained here on 64x48 synthetic people,
   * whose hands, shoes and hair are 2-4 pixels wide, it sees them at the detail an official model gets at 473x473.
   */
  small_stride2: { ...SMALL, stemPool: false },
} satisfies Record<string, SCHPConfig>;

export const SCHP_RESNET101: SCHPConfig = SCHP_CONFIGS.resnet101;
export const SCHP_SMALL: SCHPConfig = SCHP_CONFIGS.small;

/** [[parsing, fusion], [edge]], as the official forward returns; fusion is the prediction used at test time. */
export type SCHPOutput = [[parsing: T.Tensor, fusion: T.Tensor], [edge: T.Tensor]];

/**
 * InPlaceABN with activation 'none' (the backbone's BatchNorm2d): batch norm with scale |weight| + eps.
 * Same state-dict keys as InPlaceABN (no num_batches_tracked).
 */
export class IdentityABN extends T.nn.BatchNorm2d {
  constructor(numFeatures: number) {
    super(numFeatures, {}, false);
  }

  override forward(x: T.Tensor): T.Tensor {
    if (!this.weight || !this.bias) throw new Error('IdentityABN: needs affine parameters');
    const scale = T.add(T.abs(this.weight), this.eps);
    return T.batchNorm(x, this.running_mean, this.running_var, scale, this.bias, this.callOptions());
  }
}

/** AdaptiveAvgPool2d as a Sequential member (no state; keeps the official `stages.i.1` / `.2` indices). */
class AdaptiveAvgPool extends T.Module implements T.nn.TensorModule {
  constructor(readonly size: number) {
    super();
  }

  forward(x: T.Tensor): T.Tensor {
    return T.adaptiveAvgPool2d(x, this.size);
  }
}

/** Dropout2d: whole channels zeroed with probability p in training; identity in eval. */
class Dropout2d extends T.Module implements T.nn.TensorModule {
  constructor(readonly p: number) {
    super();
  }

  forward(x: T.Tensor): T.Tensor {
    if (!this.training || this.p === 0) return x;
    const [n, c] = x.shape as [number, number];
    return T.mul(x, T.bernoulli([n, c, 1, 1], 1 - this.p, { scale: 1 / (1 - this.p) }));
  }
}

const conv1x1 = (inC: number, outC: number, bias = false, stride = 1) =>
  new T.nn.Conv2d(inC, outC, 1, { bias, stride });

/** conv1x1 (no bias) then InPlaceABN with leaky ReLU: keys `.0` and `.1`. */
const convABN = (inC: number, outC: number) => new T.nn.Sequential(conv1x1(inC, outC), new T.nn.InPlaceABN(outC));

const upsample = (x: T.Tensor, like: T.Tensor) =>
  T.interpolate(x, { size: [like.shape[2]!, like.shape[3]!], mode: 'bilinear', alignCorners: true });

/** ResNet bottleneck (1x1, 3x3 with stride/dilation, 1x1 to 4 x planes) with IdentityABN norms; shared with DensePoseHead. */
export class Bottleneck extends T.Module implements T.nn.TensorModule {
  readonly conv1: T.nn.Conv2d;
  readonly bn1: IdentityABN;
  readonly conv2: T.nn.Conv2d;
  readonly bn2: IdentityABN;
  readonly conv3: T.nn.Conv2d;
  readonly bn3: IdentityABN;
  readonly downsample: T.nn.Sequential | null;

  constructor(inC: number, planes: number, stride: number, dilation: number, downsample: boolean) {
    super();
    this.conv1 = this.addModule('conv1', conv1x1(inC, planes));
    this.bn1 = this.addModule('bn1', new IdentityABN(planes));
    this.conv2 = this.addModule(
      'conv2',
      new T.nn.Conv2d(planes, planes, 3, { stride, padding: dilation, dilation, bias: false }),
    );
    this.bn2 = this.addModule('bn2', new IdentityABN(planes));
    this.conv3 = this.addModule('conv3', conv1x1(planes, planes * 4));
    this.bn3 = this.addModule('bn3', new IdentityABN(planes * 4));
    this.downsample = downsample
      ? this.addModule(
          'downsample',
          new T.nn.Sequential(conv1x1(inC, planes * 4, false, stride), new IdentityABN(planes * 4)),
        )
      : null;
  }

  forward(x: T.Tensor): T.Tensor {
    let out = T.relu(this.bn1.forward(this.conv1.forward(x)));
    out = T.relu(this.bn2.forward(this.conv2.forward(out)));
    out = this.bn3.forward(this.conv3.forward(out));
    // ReLU after the residual add.
    return T.relu(T.add(out, this.downsample ? this.downsample.forward(x) : x));
  }
}

/**
 * A ResNet stage: `blocks` bottlenecks of width `planes` (output 4x), the first with the stride and, when the
 * shape changes, a projection shortcut; `dilation(b)` gives block b's dilation. Shared by SCHP and the
 * DensePose head, which keep the stages as their own `layer1..4` (the official flat key names).
 */
export function bottleneckStage(
  inC: number,
  planes: number,
  blocks: number,
  stride: number,
  dilation: (block: number) => number = () => 1,
): T.nn.Sequential {
  return new T.nn.Sequential(
    ...Array.from(
      { length: blocks },
      (_, b) =>
        new Bottleneck(
          b === 0 ? inC : planes * 4,
          planes,
          b === 0 ? stride : 1,
          dilation(b),
          b === 0 && (stride !== 1 || inC !== planes * 4),
        ),
    ),
  );
}

/** The deep stem's modules (three 3x3 convs with their norms), as SCHP names them. */
export interface DeepStem {
  conv1: T.nn.Conv2d;
  bn1: IdentityABN;
  conv2: T.nn.Conv2d;
  bn2: IdentityABN;
  conv3: T.nn.Conv2d;
  bn3: IdentityABN;
}

/** The deep stem and (unless `pool` is false) its max-pool: stride 4 (2 without the pool). */
export function deepStemForward(m: DeepStem, x: T.Tensor, pool = true): T.Tensor {
  let h = T.relu(m.bn1.forward(m.conv1.forward(x)));
  h = T.relu(m.bn2.forward(m.conv2.forward(h)));
  h = T.relu(m.bn3.forward(m.conv3.forward(h)));
  return pool ? T.maxPool2d(h, { kernelSize: 3, stride: 2, padding: 1 }) : h;
}

/** PSP context module: pooled branches upsampled (align_corners) and concatenated with the features. */
class PSPModule extends T.Module {
  readonly stages: T.nn.ModuleList<T.nn.Sequential>;
  readonly bottleneck: T.nn.Sequential;

  constructor(inC: number, outC: number, sizes: number[]) {
    super();
    this.stages = this.addModule(
      'stages',
      new T.nn.ModuleList(
        sizes.map((s) => new T.nn.Sequential(new AdaptiveAvgPool(s), conv1x1(inC, outC), new T.nn.InPlaceABN(outC))),
      ),
    );
    this.bottleneck = this.addModule(
      'bottleneck',
      new T.nn.Sequential(
        new T.nn.Conv2d(inC + sizes.length * outC, outC, 3, { padding: 1, bias: false }),
        new T.nn.InPlaceABN(outC),
      ),
    );
  }

  forward(feats: T.Tensor): T.Tensor {
    const priors = [...this.stages].map((stage) => upsample(stage.forward(feats), feats));
    return this.bottleneck.forward(T.concat([...priors, feats], 1));
  }
}

/** Edge branch: one shared 3x3 edge classifier on three projected levels, fused by a 1x1 at layer-1 size. */
class EdgeModule extends T.Module {
  readonly conv1: T.nn.Sequential;
  readonly conv2: T.nn.Sequential;
  readonly conv3: T.nn.Sequential;
  readonly conv4: T.nn.Conv2d;
  readonly conv5: T.nn.Conv2d;

  constructor(inC: [number, number, number], mid: number, out: number) {
    super();
    this.conv1 = this.addModule('conv1', convABN(inC[0], mid));
    this.conv2 = this.addModule('conv2', convABN(inC[1], mid));
    this.conv3 = this.addModule('conv3', convABN(inC[2], mid));
    this.conv4 = this.addModule('conv4', new T.nn.Conv2d(mid, out, 3, { padding: 1 }));
    this.conv5 = this.addModule('conv5', conv1x1(out * 3, out, true));
  }

  /** Edge logits at x1's size and the concatenated mid features (3 * mid channels). */
  forward(x1: T.Tensor, x2: T.Tensor, x3: T.Tensor): { edge: T.Tensor; features: T.Tensor } {
    const f1 = this.conv1.forward(x1);
    const f2 = this.conv2.forward(x2);
    const f3 = this.conv3.forward(x3);
    const e = [f1, f2, f3].map((f) => upsample(this.conv4.forward(f), x1));
    return {
      edge: this.conv5.forward(T.concat(e, 1)),
      features: T.concat([f1, upsample(f2, x1), upsample(f3, x1)], 1),
    };
  }
}

/** Parsing decoder: context features upsampled to layer 1 and joined with its projected skip. */
class DecoderModule extends T.Module {
  readonly conv1: T.nn.Sequential;
  readonly conv2: T.nn.Sequential;
  readonly conv3: T.nn.Sequential;
  readonly conv4: T.nn.Conv2d;

  constructor(top: number, low: number, mid: number, lowOut: number, numClasses: number) {
    super();
    this.conv1 = this.addModule('conv1', convABN(top, mid));
    this.conv2 = this.addModule('conv2', convABN(low, lowOut));
    this.conv3 = this.addModule(
      'conv3',
      new T.nn.Sequential(
        conv1x1(mid + lowOut, mid),
        new T.nn.InPlaceABN(mid),
        conv1x1(mid, mid),
        new T.nn.InPlaceABN(mid),
      ),
    );
    this.conv4 = this.addModule('conv4', conv1x1(mid, numClasses, true));
  }

  forward(xt: T.Tensor, xl: T.Tensor): { parsing: T.Tensor; features: T.Tensor } {
    const top = upsample(this.conv1.forward(xt), xl);
    const features = this.conv3.forward(T.concat([top, this.conv2.forward(xl)], 1));
    return { parsing: this.conv4.forward(features), features };
  }
}

export class SCHPNetwork extends T.Module {
  readonly conv1: T.nn.Conv2d;
  readonly bn1: IdentityABN;
  readonly conv2: T.nn.Conv2d;
  readonly bn2: IdentityABN;
  readonly conv3: T.nn.Conv2d;
  readonly bn3: IdentityABN;
  readonly layer1: T.nn.Sequential;
  readonly layer2: T.nn.Sequential;
  readonly layer3: T.nn.Sequential;
  readonly layer4: T.nn.Sequential;
  readonly context_encoding: PSPModule;
  readonly edge: EdgeModule;
  readonly decoder: DecoderModule;
  /** The official spelling. */
  readonly fushion: T.nn.Sequential;

  constructor(readonly config: SCHPConfig = SCHP_RESNET101) {
    super();
    const { stem, planes, layers } = config;
    if (config.multiGrid.length === 0) throw new Error('SCHPNetwork: multiGrid needs at least one entry');
    this.conv1 = this.addModule('conv1', new T.nn.Conv2d(3, stem[0], 3, { stride: 2, padding: 1, bias: false }));
    this.bn1 = this.addModule('bn1', new IdentityABN(stem[0]));
    this.conv2 = this.addModule('conv2', new T.nn.Conv2d(stem[0], stem[0], 3, { padding: 1, bias: false }));
    this.bn2 = this.addModule('bn2', new IdentityABN(stem[0]));
    this.conv3 = this.addModule('conv3', new T.nn.Conv2d(stem[0], stem[1], 3, { padding: 1, bias: false }));
    this.bn3 = this.addModule('bn3', new IdentityABN(stem[1]));
    const c = planes.map((p) => p * 4) as [number, number, number, number];
    const grid = config.multiGrid;
    this.layer1 = this.addModule('layer1', bottleneckStage(stem[1], planes[0], layers[0], 1));
    this.layer2 = this.addModule('layer2', bottleneckStage(c[0], planes[1], layers[1], 2));
    this.layer3 = this.addModule('layer3', bottleneckStage(c[1], planes[2], layers[2], 2));
    // Output stride 16: layer4 keeps layer3's resolution and dilates instead.
    this.layer4 = this.addModule(
      'layer4',
      bottleneckStage(c[2], planes[3], layers[3], 1, (b) => 2 * grid[b % grid.length]!),
    );
    this.context_encoding = this.addModule('context_encoding', new PSPModule(c[3], config.psp, config.pspSizes));
    this.edge = this.addModule('edge', new EdgeModule([c[0], c[1], c[2]], config.edge, config.edgeClasses));
    this.decoder = this.addModule(
      'decoder',
      new DecoderModule(config.psp, c[0], config.decoder, config.decoderLow, config.numClasses),
    );
    this.fushion = this.addModule(
      'fushion',
      new T.nn.Sequential(
        conv1x1(config.decoder + 3 * config.edge, config.fusion),
        new T.nn.InPlaceABN(config.fusion),
        new Dropout2d(0.1),
        conv1x1(config.fusion, config.numClasses, true),
      ),
    );
  }

  /** Input [N, 3, H, W] (normalised BGR, see parseHuman) to logits at layer-1 resolution (stride 4, or 2 without the stem pool). */
  forward(x: T.Tensor): SCHPOutput {
    if (x.rank !== 4 || x.shape[1] !== 3)
      throw new Error(`SCHPNetwork: expected [N, 3, H, W], got ${T.formatShape(x.shape)}`);
    const x2 = this.layer1.forward(deepStemForward(this, x, this.config.stemPool ?? true));
    const x3 = this.layer2.forward(x2);
    const x4 = this.layer3.forward(x3);
    const x5 = this.layer4.forward(x4);
    const context = this.context_encoding.forward(x5);
    const dec = this.decoder.forward(context, x2);
    const edge = this.edge.forward(x2, x3, x4);
    const fusion = this.fushion.forward(T.concat([dec.features, edge.features], 1));
    return [[dec.parsing, fusion], [edge.edge]];
  }
}

/**
 * The official checkpoints are saved from DataParallel ({'state_dict': {'module.conv1.weight': ...}}): this
 * strips the `module.` prefix (readPth/loadPth unwrap the outer dict); other keys pass through.
 */
export function schpKeys<V>(dict: Map<string, V>): Map<string, V> {
  const out = new Map<string, V>();
  for (const [key, v] of dict) out.set(key.startsWith('module.') ? key.slice('module.'.length) : key, v);
  return out;
}
