import * as T from '@leffa-webgpu/core';
import { lovaszSoftmax } from '@leffa-webgpu/models';
import { afterAll, beforeAll, describe } from 'vitest';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

const OPS: Record<string, OpAdapter> = {
  sort: ([x], a) => {
    const { values, indices } = T.sort(x!, a.axis, a.descending);
    return [values, indices];
  },
  gather: ([x, index], a) => T.gather(x!, a.axis, index!),
  index_select: ([x, index], a) => T.indexSelect(x!, a.axis, index!),
  embedding: ([indices, weight]) => T.embedding(indices!, weight!),
  one_hot: ([labels], a) => T.oneHot(labels!, a.classes),
  lovasz_softmax: ([probas, labels], a) =>
    lovaszSoftmax(probas!, labels!, { classes: a.classes, ignoreIndex: a.ignoreIndex }),
};

// Both bitonic schedules (sort and the Lovasz loss sort), not only the one this adapter gets.
for (const schedule of ['workgroup', 'fused'] as const) {
  describe(`bitonic schedule '${schedule}'`, () => {
    beforeAll(() => T.setSortSchedule(schedule));
    afterAll(() => T.setSortSchedule(null));
    replayGoldenGroup('indexing', OPS);
  });
}
