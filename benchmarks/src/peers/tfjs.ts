import * as T from '@leffa-webgpu/core';
import type * as TF from '@tensorflow/tfjs-core';

export interface TfjsPeer {
  tf: typeof TF;
  /** Submits tfjs's recorded commands (it batches them like we do). */
  submit: () => void;
  /** Submits and waits until the device has finished them. */
  sync: () => Promise<void>;
  adapter: string;
}

interface WebGpuBackendLike {
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  queue: GPUQueue;
  adapterInfo?: { vendor?: string; architecture?: string };
}

/**
 * tfjs-core with tfjs-backend-webgpu on `gpu`, the same Dawn instance our device came from (tfjs asks it
 * for its own adapter and device). WEBGPU_CPU_FORWARD=false keeps small ops on the GPU too.
 */
export async function startTfjs(gpu: GPU): Promise<TfjsPeer> {
  (globalThis as { navigator?: unknown }).navigator = { gpu };
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-webgpu');
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  if (!(await tf.setBackend('webgpu'))) throw new Error('bench: tfjs could not start its webgpu backend');
  await tf.ready();
  const backend = tf.backend() as unknown as WebGpuBackendLike;
  const info = backend.adapterInfo ?? {};
  // What tfjs itself does before a readback: close the open compute pass, then submit the encoder.
  const submit = () => {
    backend.ensureCommandEncoderReady();
    backend.endComputePassEncoder();
    backend.submitQueue();
  };
  return {
    tf,
    submit,
    sync: async () => {
      submit();
      // Waited as our device waits on a CPU adapter (no setImmediate spin taking a core from the kernels).
      await (T.activeDevice().report.isCpu
        ? T.waitQuietly(backend.queue.onSubmittedWorkDone())
        : backend.queue.onSubmittedWorkDone());
    },
    adapter: `${info.vendor ?? ''} ${info.architecture ?? ''}`.trim(),
  };
}
