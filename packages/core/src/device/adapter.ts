/**
 * Finding a WebGPU adapter and device with one API in browsers (navigator.gpu) and Node (the `webgpu`
 * npm package, Dawn). Requests the adapter's larger compute limits and the optional features we use.
 */

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for CPU implementations (lavapipe/llvmpipe, SwiftShader): kernels pick CPU-friendly variants. */
  isCpu: boolean;
  features: string[];
  limits: Record<string, number>;
}

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Dawn toggles for Node, e.g. ['enable-dawn-features=allow_unsafe_apis']. */
  dawnFlags?: string[];
  /**
   * Optional features not to request even where the adapter has them, e.g. ['shader-f16'] to run as on an
   * adapter without float16 (tests of that path).
   */
  withoutFeatures?: string[];
}

/** Limits we raise to the adapter's maximum when it offers more than the defaults. */
const WANTED_LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
] as const;

const WANTED_FEATURES = ['subgroups', 'shader-f16', 'timestamp-query'] as const;

export const SETUP_HINT =
  'No WebGPU adapter was found. In Node, WebGPU comes from the `webgpu` package (Dawn), which needs a Vulkan ' +
  'driver: on Debian run `bash scripts/setup-webgpu.sh` as root (it installs Mesa 25 lavapipe from ' +
  "bookworm-backports), or install your GPU vendor's Vulkan driver. Dawn also needs XDG_RUNTIME_DIR to be set.";

/** Node without the optional peer dependency `webgpu` (Dawn), which browsers do not need. */
export const DAWN_MISSING =
  'getDevice: Node has no WebGPU of its own; install the `webgpu` package (Dawn), an optional peer dependency of ' +
  '@leffa-webgpu/core that browser users do not need: npm install webgpu';

async function findGpu(options: AcquireOptions): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (typeof process === 'undefined' || !process.versions?.node) {
    throw new Error('getDevice: this browser has no navigator.gpu (WebGPU is not enabled or not supported)');
  }
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  // Kept out of bundlers' static analysis: browsers never load the Dawn addon.
  const moduleName = 'webgpu';
  let dawn: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    dawn = (await import(/* @vite-ignore */ moduleName)) as typeof dawn;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && /'webgpu'/.test((e as Error).message)) {
      throw new Error(DAWN_MISSING);
    }
    throw e;
  }
  // Dawn's GPUBufferUsage & co. are needed as globals by code written for browsers.
  for (const [k, v] of Object.entries(dawn.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  return dawn.create(options.dawnFlags ?? []);
}

export async function acquireGpuDevice(
  options: AcquireOptions = {},
): Promise<{ device: GPUDevice; report: AdapterReport; owners: unknown[] }> {
  const gpu = await findGpu(options);
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) throw new Error(`getDevice: ${SETUP_HINT}`);

  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const requiredFeatures = WANTED_FEATURES.filter(
    (f) => adapter.features.has(f) && !options.withoutFeatures?.includes(f),
  ) as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });

  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const text = `${info.vendor ?? ''} ${info.architecture ?? ''} ${info.device ?? ''} ${info.description ?? ''}`;
  const limits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) limits[name] = (device.limits as unknown as Record<string, number>)[name]!;
  limits.minUniformBufferOffsetAlignment = device.limits.minUniformBufferOffsetAlignment;
  limits.maxUniformBufferBindingSize = device.limits.maxUniformBufferBindingSize;
  const report: AdapterReport = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isCpu: /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(text),
    features: [...device.features].map(String).sort(),
    limits,
  };
  // Dawn tears the device down when its GPU instance is garbage collected, so the caller must hold these.
  return { device, report, owners: [gpu, adapter] };
}
