/** The smallest `trainLeffa` run the tests start from: one 64x48 try-on example per step, one held-out example. */
export const smallLeffaRun = {
  task: 'tryon' as const,
  batch: 1,
  height: 64,
  width: 48,
  lr: 1e-4,
  seed: 0,
  leffa: 'on' as const,
  finetuneAfter: 0,
  sampleEvery: 0,
  evalExamples: 1,
};
