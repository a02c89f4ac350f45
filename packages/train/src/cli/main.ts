#!/usr/bin/env node
import { existsSync, statSync } from 'node:fs';
import { Command, Option } from 'commander';
import { DEFAULT_MAX_PIXELS, setDefaultMaxPixels } from '@leffa-webgpu/data';
import { intOption, listOption, numberOption } from './options.js';
import {
  addTrainingOptions,
  batchOption,
  count,
  densePoseCkptOption,
  evalExamplesOption,
  examplesOption,
  guidanceOption,
  imageOption,
  initOption,
  int,
  leffaDistanceOption,
  leffaNormalizationOption,
  leffaWeightOption,
  lrOption,
  lrValue,
  openPoseCkptOption,
  outOption,
  parseSize,
  poolOption,
  seedOption,
  seedsOption,
  sizeOption,
  stepsOption,
  taskOption,
  trainingArgs,
  vaeOption,
  scalingFactor,
  weight,
} from './presets.js';
// Numeric options: every value is checked (finite, in range) before any work starts; see options.ts and presets.ts.
import { demo } from './demo.js';
import { experiment } from './experiment.js';
import { exportCheckpoint } from './export.js';
import { evaluate, generate, generateFromPhotos, loadInputs } from './generate.js';
import { isWeightsFile, openCheckpointFolder, parseCategory } from '@leffa-webgpu/pipelines';
import { folderExamples, trainLeffa } from './train-leffa.js';
import { pose, trainOpenPose } from './train-openpose.js';
import { SCHP_TRAINABLE, parse, trainSchp } from './train-schp.js';
import { densePose, trainDensePose } from './train-densepose.js';
import { trainVae } from './train-vae.js';
import { READOUT_WEIGHTINGS } from '../leffa/reference-readout.js';
import { packageVersion } from './version.js';
import { relaunchWithoutDawnWarnings } from './dawn-stderr.js';
import { addReleasedOptions, checkReleasedOptions, generateReleased } from './released.js';

const DEFAULT_TRYON = 'shipped:leffa-tiny-tryon';
const DEFAULT_POSE = 'shipped:leffa-tiny-pose';
const DEFAULT_OPENPOSE = 'shipped:openpose-small';
const DEFAULT_SCHP = 'shipped:schp-small';
const DEFAULT_DENSEPOSE = 'shipped:densepose-small';

const program = new Command('leffa')
  .description('Leffa on WebGPU: train and run controllable person image generation')
  .version(packageVersion(), '-V, --version', 'print the version of @leffa-webgpu/train');

addTrainingOptions(program.command('train-vae').description('train the tiny VAE on synthetic people and garments'), {
  out: 'runs/vae',
  steps: 2000,
  batch: 8,
  size: '128x96',
  lr: 2e-3,
  saveEvery: 200,
  schedule: true,
  resumeHelp: 'resume a run bit-for-bit from its checkpoint (its VAE shape is kept)',
})
  .addOption(new Option('--crop <HxW>', 'train on random crops of this size').argParser(parseSize('--crop')))
  .addOption(
    new Option('--block-channels <list>', 'channels of each VAE stage (one 2x downsampling between stages)')
      .argParser(listOption(count))
      .default([16, 32, 32, 32], '16,32,32,32'),
  )
  .addOption(
    new Option('--latent-channels <n>', 'latent channels (the Leffa UNets trained on this VAE follow it)')
      .argParser(count)
      .default(4),
  )
  .addOption(
    new Option(
      '--chroma-weight <w>',
      "weight of an extra L1 + MSE on each pixel's colour (RGB minus its grey level): without it tiny VAEs learn colour last",
    )
      .argParser(weight)
      .default(0),
  )
  .addOption(
    initOption(
      "start a new run from a VAE checkpoint's weights (fresh optimizer and schedule; its shape and colour weight are kept)",
    ),
  )
  .addOption(
    new Option(
      '--decoder-channels <list>',
      "the decoder's channels per stage, when they should differ from the encoder's (with --init: the encoder is loaded, the decoder starts fresh)",
    ).argParser(listOption(count)),
  )
  .option(
    '--decoder-only',
    "train the decoder only (with --init): the encoder's latents, and so the UNets trained on them, stay valid",
  )
  .action(async (o) => {
    await trainVae({
      ...(o.decoderChannels ? { decoderChannels: o.decoderChannels as number[] } : {}),
      ...(o.decoderOnly ? { decoderOnly: true } : {}),
      ...(o.init ? { init: o.init as string } : {}),
      ...trainingArgs(o),
      ...(o.crop ? { crop: o.crop as [number, number] } : {}),
      blockChannels: o.blockChannels,
      latentChannels: o.latentChannels,
      chromaWeight: o.chromaWeight,
    });
  });

addTrainingOptions(
  program
    .command('train')
    .description('train the tiny Leffa model (reference + generative UNet) on synthetic data or a dataset folder'),
  {
    out: 'runs/leffa',
    steps: 1000,
    batch: 4,
    batchHelp: 'examples per step',
    size: '128x96',
    lr: 2e-4,
    saveEvery: 100,
    schedule: true,
  },
)
  .addOption(taskOption())
  .option('--leffa <mode>', 'Leffa loss: on, off, or finetune (baseline first, then on)', 'on')
  .option('--finetune-after <n>', 'step at which finetune mode switches the Leffa loss on', int, 0)
  .addOption(leffaWeightOption('lambda of L_diffusion + lambda L_leffa'))
  .addOption(leffaDistanceOption())
  .addOption(leffaNormalizationOption())
  .option(
    '--flow-supervision <w>',
    'weight of a supervised loss on the attention flows against the exact synthetic flow (not Leffa; builds a starting point for experiment --init)',
    weight,
    0,
  )
  .option(
    '--background-flow <w>',
    'pose transfer on synthetic data: where the background shows in both views, the flow supervision also asks for the identity, each such pixel weighing w (a person pixel weighs 1; 0: off)',
    weight,
    0,
  )
  .option(
    '--reference-readout <w>',
    "weight of a loss on what the generative UNet reads from the reference: its first latent-size channels must hold the target's latent where masked (ours, not Leffa's)",
    weight,
    0,
  )
  .addOption(
    new Option(
      '--readout-weighting <w>',
      "how the readout loss weighs the attention layers: each once, or by its tokens (the finest grid, where a garment's pattern fits, dominates)",
    )
      .choices(READOUT_WEIGHTINGS)
      .default('layers'),
  )
  .option(
    '--reference-mass <w>',
    "weight of a loss on the generative UNet's attention inside the mask: the reference keys must take most of its softmax over [own; reference] keys (ours, not Leffa's)",
    weight,
    0,
  )
  .option(
    '--snr-gamma <g>',
    "Min-SNR-gamma weighting of the diffusion loss (diffusers' --snr_gamma; 5 is usual; 0: off)",
    weight,
    0,
  )
  .option(
    '--mask-weight <w>',
    'try-on: how much the diffusion loss counts inside the inpainting mask (the garment region) against outside it (ours; 1: the plain loss)',
    numberOption({ above: 0 }),
    1,
  )
  .option(
    '--ema-decay <d>',
    "decay of the weights' exponential moving average that `export --ema` writes (0.999 averages about the last 1000 steps; a short fine-tune wants less, e.g. 0.99)",
    numberOption({ min: 0, max: 1 }),
    0.999,
  )
  .addOption(poolOption("training examples (their latents are cached), or 'fresh': new examples every step", 'fresh'))
  .option('--data <source>', "'synthetic', or a VITON-HD / DressCode / DeepFashion folder", 'synthetic')
  .option('--category <name>', 'DressCode category: upper_body, lower_body or dresses', 'upper_body')
  .addOption(vaeOption('trained VAE checkpoint (see train-vae)'))
  .addOption(initOption('start from a Leffa checkpoint (e.g. the shipped tiny weights)'))
  .option(
    '--scaling-factor <f>',
    "VAE latent scaling factor to train with instead of the checkpoint's: a number, or 'unit' to measure one giving the training latents unit variance",
    scalingFactor,
  )
  .option(
    '--config <name>',
    'architecture: tiny, sd15 or sdxl (Stable Diffusion 1.5 / SDXL inpainting size, for official weights via --init)',
    'tiny',
  )
  .addOption(
    new Option(
      '--unet-channels <list>',
      "both UNets' channels per level, replacing the config's (from scratch only; e.g. 64,64,64 widens the tiny UNet's first level)",
    ).argParser(listOption(count)),
  )
  .option(
    '--reference-coordinates',
    "the reference UNet also reads each latent position's (x, y) as two input channels (ours, not Leffa's; from an --init checkpoint without them they start at zero weight)",
  )
  .option(
    '--reference-from-generative',
    "before the first step, the reference UNet becomes a copy of the --init checkpoint's generative UNet (ours: a trained denoiser's features, as Leffa's reference UNet starts from Stable Diffusion)",
  )
  .option('--sample-every <n>', 'sample-grid interval (0: only at the end)', int, 0)
  .addOption(evalExamplesOption(4, 'held-out examples for samples and metrics'))
  .action(async (o) => {
    const [height, width] = o.size as [number, number];
    if (!['on', 'off', 'finetune'].includes(o.leffa))
      throw new Error(`--leffa must be on, off or finetune, got '${o.leffa}'`);
    if (!['tiny', 'sd15', 'sdxl'].includes(o.config))
      throw new Error(`--config must be tiny, sd15 or sdxl, got '${o.config}'`);
    const folder = o.data === 'synthetic' ? undefined : folderExamples(o.data, o.task, o.category, height, width);
    await trainLeffa({
      ...trainingArgs(o),
      task: o.task,
      leffa: o.leffa,
      finetuneAfter: o.finetuneAfter,
      leffaWeight: o.leffaWeight,
      leffaDistance: o.leffaDistance,
      leffaNormalization: o.leffaNormalization,
      flowSupervision: o.flowSupervision,
      backgroundFlow: o.backgroundFlow,
      referenceReadout: o.referenceReadout,
      readoutWeighting: o.readoutWeighting,
      referenceMass: o.referenceMass,
      snrGamma: o.snrGamma,
      maskWeight: o.maskWeight,
      emaDecay: o.emaDecay,
      pool: folder ? Math.min(o.pool, folder.length) : o.pool,
      vae: o.vae,
      init: o.init,
      sampleEvery: o.sampleEvery,
      evalExamples: o.evalExamples,
      config: o.config,
      scalingFactor: o.scalingFactor,
      ...(o.unetChannels ? { unetChannels: o.unetChannels as number[] } : {}),
      ...(o.referenceCoordinates ? { referenceCoordinates: true } : {}),
      ...(o.referenceFromGenerative ? { referenceFromGenerative: true } : {}),
      ...folder?.sources,
    });
  });

program
  .command('demo')
  .description(
    'the main job: evaluate the shipped tiny model on held-out people, fine-tune it for a few minutes, evaluate again and keep the better; writes before/after images, loss curve and metrics',
  )
  .addOption(outOption('runs/demo'))
  .addOption(stepsOption(30, 'fine-tuning steps'))
  .addOption(taskOption())
  .addOption(examplesOption(6, 'held-out people of the before/after evaluation'))
  .addOption(seedsOption('noise seeds of the before/after evaluation (comma-separated)'))
  .action(async (o) => {
    const init = o.task === 'pose' ? DEFAULT_POSE : DEFAULT_TRYON;
    console.log(`demo: fine-tuning ${init} for ${o.steps} steps on synthetic ${o.task} data; outputs in ${o.out}/`);
    await demo({ task: o.task, init, out: o.out, steps: o.steps, examples: o.examples, seeds: o.seeds });
  });

program
  .command('experiment')
  .description('train with and without the Leffa loss from the same seed and compare flow EPE and SSIM')
  .addOption(vaeOption('trained VAE checkpoint: both runs train from scratch'))
  .addOption(initOption('Leffa checkpoint both runs fine-tune from (instead of --vae)'))
  .addOption(leffaWeightOption('lambda of the Leffa run'))
  .addOption(leffaDistanceOption())
  .addOption(leffaNormalizationOption())
  .addOption(lrOption(2e-4))
  .option(
    '--flow-warmup <n>',
    "steps of supervised attention-flow training both runs start from (stands in for a pretrained model's roughly corresponding attention)",
    int,
    0,
  )
  .option('--warmup-lr <lr>', 'learning rate of the flow warm-up (default --lr)', lrValue)
  .addOption(taskOption())
  .addOption(outOption('runs/experiment'))
  .addOption(stepsOption(500, 'steps per run'))
  .addOption(batchOption(4, 'examples per step'))
  .addOption(sizeOption('128x96'))
  .addOption(poolOption('training examples'))
  .addOption(seedOption('seed shared by both runs'))
  .addOption(evalExamplesOption(8, 'held-out examples'))
  .action(async (o) => {
    const [height, width] = o.size as [number, number];
    await experiment({
      task: o.task,
      out: o.out,
      steps: o.steps,
      batch: o.batch,
      height,
      width,
      pool: o.pool,
      seed: o.seed,
      vae: o.vae,
      init: o.init,
      lr: o.lr,
      leffaWeight: o.leffaWeight,
      leffaDistance: o.leffaDistance,
      leffaNormalization: o.leffaNormalization,
      flowWarmup: o.flowWarmup,
      warmupLr: o.warmupLr,
      evalExamples: o.evalExamples,
    });
  });

program
  .command('export')
  .description('write an inference-only float16 copy of a training checkpoint (Leffa, OpenPose, SCHP or DensePose)')
  .requiredOption('--ckpt <dir>', 'training checkpoint')
  .addOption(outOption(undefined, 'output checkpoint folder').makeOptionMandatory())
  .option('--ema', 'Leffa: export the EMA weights')
  .option('--weights <which>', 'SCHP: auto, network or aggregate (auto: the aggregate when a round ran)', 'auto')
  .option('--note <json>', 'a JSON object added to state.json (e.g. held-out metrics)')
  .option(
    '--decoder-from <dir>',
    "Leffa: take the VAE's decoder from a train-vae --decoder-only checkpoint trained on this model's encoder",
  )
  .action(async (o) => {
    let note: Record<string, unknown> | undefined;
    if (o.note !== undefined) {
      try {
        note = JSON.parse(o.note) as Record<string, unknown>;
      } catch (e) {
        throw new Error(`export: --note is not JSON (${(e as Error).message})`);
      }
      if (typeof note !== 'object' || note === null || Array.isArray(note))
        throw new Error('export: --note must be a JSON object');
    }
    if (!['auto', 'network', 'aggregate'].includes(o.weights))
      throw new Error(`export: --weights must be auto, network or aggregate, got '${o.weights}'`);
    await exportCheckpoint({
      ckpt: o.ckpt,
      out: o.out,
      ema: o.ema === true,
      schpWeights: o.weights,
      ...(note ? { note } : {}),
      ...(o.decoderFrom ? { decoderFrom: o.decoderFrom as string } : {}),
    });
  });

addTrainingOptions(
  program
    .command('train-openpose')
    .description('train the small OpenPose body model on synthetic people; reports PCK@0.2 on held-out ones'),
  {
    out: 'runs/openpose',
    steps: 2000,
    batch: 8,
    size: '128x96',
    lr: 1e-3,
    saveEvery: 200,
  },
)
  .option('--optimizer <name>', 'adamw, or sgd (stages 2-6 at 4x lr)', 'adamw')
  .addOption(evalExamplesOption(50, 'held-out images for PCK'))
  .option(
    '--data <folder>',
    'a COCO keypoints folder (annotations/person_keypoints_<split>.json, <split>/ images) instead of synthetic people',
  )
  .option('--split <name>', 'COCO training split', 'train2017')
  .option('--val-split <name>', 'COCO split for PCK (synthetic people when the folder has none)', 'val2017')
  .action(async (o) => {
    await trainOpenPose({
      ...trainingArgs(o),
      optimizer: o.optimizer,
      evalExamples: o.evalExamples,
      data: o.data,
      split: o.split,
      valSplit: o.valSplit,
    });
  });

program
  .command('pose')
  .description('body pose of an image: OpenPose JSON and the rendered skeleton')
  .addOption(imageOption('--image <png>'))
  .option(
    '--ckpt <dir|file>',
    "OpenPose checkpoint folder, or pytorch-openpose's official body_pose_model.pth (full-size COCO-18 model)",
    DEFAULT_OPENPOSE,
  )
  .addOption(outOption('runs/pose'))
  .option(
    '--scales <list>',
    "body.py's scale_search: at scale s the image is resized to s x boxsize px tall",
    listOption(numberOption({ above: 0 })),
    [0.5],
  )
  .option(
    '--boxsize <px>',
    "body.py's boxsize (default: the model's, 368 for body_pose_model.pth, 256 for models trained here on 128-px people)",
    numberOption({ above: 0 }),
  )
  .option(
    '--scale-basis <basis>',
    "'box' (body.py) or 'image': scales as fractions of the image's own height (this tool's earlier behaviour)",
    'box',
  )
  .option(
    '--scale-accumulation <how>',
    "heatmaps of several scales: 'body.py' (heatmap_avg += heatmap_avg + heatmap / n, as released) or 'mean' (each scale once)",
    'body.py',
  )
  .action(async (o) => {
    if (!['box', 'image'].includes(o.scaleBasis))
      throw new Error(`--scale-basis must be box or image, got '${o.scaleBasis}'`);
    if (!['body.py', 'mean'].includes(o.scaleAccumulation))
      throw new Error(`--scale-accumulation must be body.py or mean, got '${o.scaleAccumulation}'`);
    await pose({
      image: o.image,
      ckpt: o.ckpt,
      out: o.out,
      scales: o.scales,
      boxsize: o.boxsize,
      scaleBasis: o.scaleBasis,
      scaleAccumulation: o.scaleAccumulation,
    });
  });

addTrainingOptions(
  program
    .command('train-schp')
    .description(
      'train the small SCHP human parser on synthetic people with self-correction (optionally on noisy labels); reports mIoU on held-out ones',
    ),
  {
    out: 'runs/schp',
    steps: 2000,
    batch: 8,
    batchHelp: 'images per step (at least 2)',
    size: '128x96',
    lr: undefined,
    lrHelp: 'peak learning rate (default 7e-3 for sgd, 2e-3 for adamw)',
    saveEvery: 200,
    saveEveryHelp: 'checkpoint interval (also after every self-correction round)',
  },
)
  .option(
    '--config <name>',
    `network: ${SCHP_TRAINABLE.join(' or ')} (small without the stem pool: output stride 2)`,
    'small',
  )
  .option('--cycles <n>', 'self-correction rounds; the last one ends the run (0: none)', int, 3)
  .option('--cycle-steps <n>', 'steps per self-correction cycle (default steps / 10)', count)
  .option('--optimizer <name>', 'sgd (momentum 0.9, as the paper) or adamw', 'adamw')
  .option('--label-noise <p>', 'label noise on the training labels, 0..1', numberOption({ min: 0, max: 1 }), 0)
  .option('--bn-batches <n>', 'batches of training images per BN re-estimation', count, 8)
  .addOption(evalExamplesOption(50, 'held-out images for mIoU'))
  .option('--eval-every <n>', 'held-out mIoU every n steps, in metrics.json as curve (0: at the end only)', int, 0)
  .action(async (o) => {
    if (!['sgd', 'adamw'].includes(o.optimizer))
      throw new Error(`--optimizer must be sgd or adamw, got '${o.optimizer}'`);
    if (!SCHP_TRAINABLE.includes(o.config))
      throw new Error(`--config must be ${SCHP_TRAINABLE.join(' or ')}, got '${o.config}'`);
    await trainSchp({
      ...trainingArgs(o),
      config: o.config,
      cycles: o.cycles,
      cycleSteps: o.cycleSteps,
      optimizer: o.optimizer,
      labelNoise: o.labelNoise,
      evalExamples: o.evalExamples,
      evalEvery: o.evalEvery,
      bnBatches: o.bnBatches,
    });
  });

program
  .command('parse')
  .description('human parsing of an image with an SCHP checkpoint: palette label PNG and per-class masks')
  .addOption(imageOption())
  .option(
    '--ckpt <dir|file>',
    'SCHP checkpoint (from train-schp; default: the shipped small model), or an official SCHP .pth (exp-schp-*-lip|atr|pascal.pth: ResNet-101 chosen by class count, 473x473 LIP / 512x512 ATR and Pascal)',
    DEFAULT_SCHP,
  )
  .addOption(outOption('runs/parse'))
  .addOption(sizeOption(undefined, "network input size (default: the checkpoint's training size)"))
  .option('--flip', 'average with the mirrored prediction (left/right labels swapped)')
  .option(
    '--weights <which>',
    'auto, network or aggregate (auto: the SCHP aggregate when the checkpoint has one)',
    'auto',
  )
  .action(async (o) => {
    if (!['auto', 'network', 'aggregate'].includes(o.weights))
      throw new Error(`--weights must be auto, network or aggregate, got '${o.weights}'`);
    await parse({
      image: o.image,
      ckpt: o.ckpt,
      out: o.out,
      flip: o.flip === true,
      weights: o.weights,
      ...(o.size ? { size: o.size as [number, number] } : {}),
    });
  });

addTrainingOptions(
  program
    .command('train-densepose')
    .description(
      'train a DensePose-style dense-correspondence network on synthetic people; reports part mIoU and UV error on held-out ones',
    ),
  {
    out: 'runs/densepose',
    steps: 2000,
    batch: 8,
    batchHelp: 'images per step (at least 2)',
    size: '128x96',
    lr: 2e-3,
    lrHelp: 'peak AdamW learning rate (warm-up, then cosine to lr/100)',
    saveEvery: 200,
  },
)
  .option('--config <name>', 'network: small or resnet50', 'small')
  .addOption(evalExamplesOption(50, 'held-out images for mIoU and UV error'))
  .action(async (o) => {
    if (!['small', 'resnet50'].includes(o.config))
      throw new Error(`--config must be small or resnet50, got '${o.config}'`);
    await trainDensePose({ ...trainingArgs(o), config: o.config, evalExamples: o.evalExamples });
  });

program
  .command('densepose')
  .description(
    'DensePose of an image with a train-densepose checkpoint: parula (VITON-HD), raw I (DressCode) and IUV (pose transfer) renders',
  )
  .addOption(imageOption())
  .option(
    '--ckpt <dir>',
    'DensePose checkpoint (from train-densepose; default: the shipped small model)',
    DEFAULT_DENSEPOSE,
  )
  .addOption(outOption('runs/densepose-infer'))
  .addOption(sizeOption(undefined, 'network input size (default: the training height, width from the aspect)'))
  .option('--keypoints <json>', "OpenPose JSON: predict inside the first person's box")
  .action(async (o) => {
    await densePose({
      image: o.image,
      ckpt: o.ckpt,
      out: o.out,
      ...(o.size ? { size: o.size as [number, number] } : {}),
      ...(o.keypoints ? { keypoints: o.keypoints } : {}),
    });
  });

/** Photo inputs go through the preprocessing pipeline unless the mask / DensePose renders are given. */
const isPhotoRun = (input: string, renders: (string | undefined)[]) =>
  !/^synthetic:/.test(input) &&
  ((existsSync(input) && statSync(input).isDirectory()) || renders.every((r) => r === undefined));

program
  .command('tryon')
  .description(
    "virtual try-on: put the garment on the person (photos: OpenPose, SCHP and DensePose prepare the inputs; the shipped ones learned only synthetic people, so a photo they fail on stops with the reason: run Leffa's released weights, --ckpts <folder>, for real photos)",
  )
  .requiredOption(
    '--person <png|jpg|folder|synthetic:SEED>',
    'person photo, a folder of them (batch, one garment), or a synthetic example',
  )
  .option('--garment <png|jpg>', "flat garment image (defaults to the synthetic example's garment)")
  .option('--mask <png>', 'agnostic mask (white = regenerate), for photo inputs with ready-made renders')
  .option('--densepose <png>', 'DensePose render, for photo inputs with ready-made renders')
  .option(
    '--category <name>',
    'garment category for photos: upper_body, lower_body or dresses (upper, lower, dress)',
    'upper_body',
  )
  .addOption(openPoseCkptOption(DEFAULT_OPENPOSE))
  .option(
    '--schp <dir|file>',
    'SCHP checkpoint for photos (from train-schp), or an official exp-schp-*-lip.pth',
    DEFAULT_SCHP,
  )
  .addOption(densePoseCkptOption(DEFAULT_DENSEPOSE))
  .option('--repaint', 'photos: keep the person outside the mask exactly (soft edge inside it)')
  .option(
    '--no-checks',
    'photos: sample even when the preprocessing fails its checks (no person, too few or unsure keypoints, a mask over the face)',
  )
  .addOption(sizeOption('128x96', 'model size for photos (letterboxed on white)'))
  .option(
    '--ckpt <dir|file>',
    "Leffa checkpoint, or Leffa's official virtual_tryon.pth / virtual_tryon_dc.pth (or its state dict as .safetensors; SD1.5 size)",
    DEFAULT_TRYON,
  )
  .addOption(outOption('runs/tryon.png', 'output image (a folder in batch mode)', '--out <png>'))
  .addOption(stepsOption(30, 'sampling steps'))
  .addOption(guidanceOption())
  .addOption(seedOption())
  .action(async (o, cmd: Command) => {
    checkReleasedOptions(cmd, o);
    if (o.ckpts !== undefined) {
      await generateReleased(cmd, o, 'tryon');
      return;
    }
    if (isPhotoRun(o.person, [o.mask, o.densepose])) {
      await generateFromPhotos({
        task: 'tryon',
        person: o.person,
        reference: o.garment,
        ckpt: o.ckpt,
        openpose: o.openpose,
        schp: o.schp,
        densepose: o.denseposeCkpt,
        category: parseCategory(o.category),
        size: o.size as [number, number],
        out: o.out,
        steps: o.steps,
        seed: o.seed,
        guidance: o.guidance,
        repaint: o.repaint === true,
        checks: o.checks !== false,
      });
      return;
    }
    const input = await loadInputs('tryon', o.person, o.garment, o.mask, o.densepose);
    await generate({
      task: 'tryon',
      ckpt: o.ckpt,
      input,
      out: o.out,
      steps: o.steps,
      seed: o.seed,
      guidance: o.guidance,
    });
  });

program
  .command('pose-transfer')
  .description(
    "pose transfer: re-render the source person in the target pose (photos: OpenPose and DensePose of the target; the shipped ones learned only synthetic people, so a photo they fail on stops with the reason: run Leffa's released weights, --ckpts <folder>, for real photos)",
  )
  .requiredOption(
    '--target-pose <png|jpg|folder|synthetic:SEED>',
    'image in the target pose, a folder of them (batch), or a synthetic example (both views)',
  )
  .option('--source <png|jpg>', "source person image (defaults to the synthetic example's first view)")
  .option('--densepose <png>', 'DensePose IUV render of the target pose, for photo inputs with a ready-made render')
  .addOption(openPoseCkptOption(DEFAULT_OPENPOSE))
  .addOption(densePoseCkptOption(DEFAULT_DENSEPOSE))
  .option(
    '--no-checks',
    'photos: sample even when the preprocessing fails its checks (no person, too few or unsure keypoints, a mask over the face)',
  )
  .addOption(sizeOption('128x96', 'model size for photos (letterboxed on white)'))
  .option(
    '--ckpt <dir|file>',
    "Leffa checkpoint, or Leffa's official pose_transfer.pth (or its state dict as .safetensors; SDXL size, detected from its keys)",
    DEFAULT_POSE,
  )
  .addOption(outOption('runs/pose-transfer.png', 'output image (a folder in batch mode)', '--out <png>'))
  .addOption(stepsOption(30, 'sampling steps'))
  .addOption(guidanceOption())
  .addOption(seedOption())
  .action(async (o, cmd: Command) => {
    checkReleasedOptions(cmd, o);
    if (o.ckpts !== undefined) {
      await generateReleased(cmd, o, 'pose');
      return;
    }
    if (isPhotoRun(o.targetPose, [o.densepose])) {
      await generateFromPhotos({
        task: 'pose',
        person: o.targetPose,
        reference: o.source,
        ckpt: o.ckpt,
        openpose: o.openpose,
        densepose: o.denseposeCkpt,
        size: o.size as [number, number],
        out: o.out,
        steps: o.steps,
        seed: o.seed,
        guidance: o.guidance,
        checks: o.checks !== false,
      });
      return;
    }
    const input = await loadInputs('pose', o.targetPose, o.source, o.densepose ? o.targetPose : undefined, o.densepose);
    await generate({
      task: 'pose',
      ckpt: o.ckpt,
      input,
      out: o.out,
      steps: o.steps,
      seed: o.seed,
      guidance: o.guidance,
    });
  });

// tryon / pose-transfer --ckpts <folder>: Leffa's released checkpoints (released.ts).
for (const [name, task] of [
  ['tryon', 'tryon'],
  ['pose-transfer', 'pose'],
] as const)
  addReleasedOptions(program.commands.find((c) => c.name() === name)!, task);

program
  .command('eval')
  .description('metrics of a checkpoint on held-out synthetic examples (L1, PSNR, SSIM, flow end-point error)')
  .addOption(taskOption("tryon or pose (default: the checkpoint's, else tryon)", null))
  .option('--ckpt <dir>', 'Leffa checkpoint')
  .addOption(examplesOption(12, 'held-out examples'))
  .addOption(seedsOption('noise seeds to average over (comma-separated)'))
  .addOption(stepsOption(20, 'sampling steps'))
  .addOption(guidanceOption())
  .addOption(outOption(undefined, 'write metrics.json and samples.png (every seed) here'))
  .action(async (o) => {
    if (o.examples < 1) throw new Error(`--examples must be at least 1, got ${o.examples}`);
    // A checkpoint folder records the task it was trained for; scoring it on the other task's examples is no
    // measurement of it.
    const recorded =
      o.ckpt && !isWeightsFile(o.ckpt)
        ? ((await openCheckpointFolder(o.ckpt)).extra as { task?: string }).task
        : undefined;
    if (o.task && (recorded === 'tryon' || recorded === 'pose') && o.task !== recorded)
      throw new Error(
        `eval: '${o.ckpt}' was trained for ${recorded}; --task ${o.task} would score it on ${o.task} examples (leave --task out or pass --task ${recorded})`,
      );
    const task = o.task ?? (recorded === 'pose' ? 'pose' : 'tryon');
    await evaluate({
      task,
      ckpt: o.ckpt ?? (task === 'pose' ? DEFAULT_POSE : DEFAULT_TRYON),
      examples: o.examples,
      seeds: o.seeds,
      out: o.out,
      steps: o.steps,
      guidance: o.guidance,
    });
  });

program
  .option(
    '--max-pixels <n>',
    `largest image (width x height) any command decodes; bigger ones are refused from their header (default ${DEFAULT_MAX_PIXELS})`,
    intOption(1),
  )
  .hook('preAction', () => {
    const { maxPixels } = program.opts<{ maxPixels?: number }>();
    if (maxPixels !== undefined) setDefaultMaxPixels(maxPixels);
  });

// Dawn prints two limit-clamp warnings on some Vulkan drivers; the command runs in a worker whose stderr is filtered.
if (!relaunchWithoutDawnWarnings()) {
  program.parseAsync().catch((e: Error) => {
    console.error(`leffa: ${e.message}`);
    process.exit(1);
  });
}
