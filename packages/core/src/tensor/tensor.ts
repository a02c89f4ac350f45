import type { BackwardOptions, GradNode } from '../autograd/node.js';
import type { Device } from '../device/device.js';
import { formatValues } from './format.js';
import { halfToFloat } from './half.js';
import { HostStorage } from './host-storage.js';
import { setTensorCheck, trackTensor } from './scope.js';
import { formatShape, sizeOf } from './shape.js';
import type { Storage } from './storage.js';

/**
 * Element types. float32 and float16 are the float types (float16 is stored in 2 bytes and computed in f32
 * registers, see README); int32 holds indices and labels (argmax outputs, class targets).
 */
export type DType = 'float32' | 'float16' | 'int32';

type Operand = Tensor | number;
type Axes = number | readonly number[];

export const BYTES_PER_ELEMENT: Record<DType, number> = { float32: 4, float16: 2, int32: 4 };

/** The dtypes tensors can have. */
export const DTYPES: readonly DType[] = ['float32', 'float16', 'int32'];

/** float32 or float16. */
export const isFloatDType = (dtype: DType): boolean => dtype === 'float32' || dtype === 'float16';

/** Throws naming `op` and the accepted dtypes unless `dtype` is one of DTYPES (a typo, or 'float16'). */
export function checkDType(op: string, dtype: unknown): asserts dtype is DType {
  if (!(DTYPES as readonly unknown[]).includes(dtype)) {
    throw new TypeError(`${op}: unknown dtype ${JSON.stringify(dtype)} (accepted dtypes: ${DTYPES.join(', ')})`);
  }
}

// Storage of tensors that were garbage collected without dispose() goes back to the pool.
const collected = new FinalizationRegistry<Storage>((storage) => storage.release());

let nextId = 0;

/**
 * An n-dimensional array on the GPU. Storage is always contiguous (row-major); `reshape`, `detach` and
 * aliases share it, other layout changes copy through a kernel. Reading values is asynchronous.
 */
export class Tensor {
  readonly id = nextId++;
  private storageRef: Storage | null;
  private dtypeValue: DType;
  /** Set for outputs of recorded ops: the node whose backward produces this tensor's gradient inputs. */
  gradFn: GradNode | null = null;
  /** Which output of `gradFn` this tensor is. */
  gradIndex = 0;
  /** Accumulated gradient (leaf tensors only). */
  grad: Tensor | null = null;
  /** Survives `tidy` scopes (parameters' gradients, optimizer state). */
  kept = false;
  private requiresGradFlag = false;

  // Method-call sugar for the functional ops, attached to the prototype by ops/methods.ts.
  declare backward: (grad?: Tensor, options?: BackwardOptions) => void;
  declare add: (other: Operand) => Tensor;
  declare sub: (other: Operand) => Tensor;
  declare mul: (other: Operand) => Tensor;
  declare div: (other: Operand) => Tensor;
  declare pow: (exponent: Operand) => Tensor;
  declare neg: () => Tensor;
  declare exp: () => Tensor;
  declare log: () => Tensor;
  declare sqrt: () => Tensor;
  declare abs: () => Tensor;
  declare relu: () => Tensor;
  declare sigmoid: () => Tensor;
  declare tanh: () => Tensor;
  declare silu: () => Tensor;
  declare square: () => Tensor;
  declare clamp: (min?: number, max?: number) => Tensor;
  declare sum: (axes?: Axes, keepdim?: boolean) => Tensor;
  declare mean: (axes?: Axes, keepdim?: boolean) => Tensor;
  declare max: (axes?: Axes, keepdim?: boolean) => Tensor;
  declare min: (axes?: Axes, keepdim?: boolean) => Tensor;
  declare argmax: (axis?: number, keepdim?: boolean) => Tensor;
  declare reshape: (shape: readonly number[]) => Tensor;
  declare flatten: (start?: number, end?: number) => Tensor;
  declare squeeze: (axes?: Axes) => Tensor;
  declare unsqueeze: (axis: number) => Tensor;
  declare permute: (dims: readonly number[]) => Tensor;
  declare transpose: (a?: number, b?: number) => Tensor;
  declare expand: (shape: readonly number[]) => Tensor;
  declare matmul: (other: Tensor) => Tensor;
  declare softmax: (axis?: number) => Tensor;
  declare logSoftmax: (axis?: number) => Tensor;
  /** A copy in `dtype` (an alias when it already has it and needs no gradient); differentiable between floats. */
  declare to: (dtype: DType) => Tensor;
  /** `to('float16')`. */
  declare half: () => Tensor;
  /** `to('float32')`. */
  declare float: () => Tensor;

  constructor(
    storage: Storage,
    readonly shape: readonly number[],
    dtype: DType = 'float32',
  ) {
    checkDType('Tensor', dtype);
    this.dtypeValue = dtype;
    this.storageRef = storage;
    collected.register(this, storage, this);
    trackTensor(this);
  }

  get dtype(): DType {
    return this.dtypeValue;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get byteLength(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }

  get isDisposed(): boolean {
    return this.storageRef === null;
  }

  /**
   * Whether the values are in host memory with no device buffer (an offloaded module's weights, or a tensor
   * loaded with the loaders' `host` option): ops refuse it, reading it back works.
   */
  get isOnHost(): boolean {
    return this.storageRef instanceof HostStorage;
  }

  get device(): Device {
    return this.storage.device;
  }

  /** The tensor's storage; throws if it was disposed (ops call `assertUsable` first for a better message). */
  get storage(): Storage {
    if (!this.storageRef) throw new Error(`tensor ${formatShape(this.shape)} was used after dispose()`);
    return this.storageRef;
  }

  /** Whether gradients flow to this tensor. Only float tensors that are leaves can be flagged by hand. */
  get requiresGrad(): boolean {
    return this.requiresGradFlag;
  }

  set requiresGrad(value: boolean) {
    if (value && !isFloatDType(this.dtype)) {
      throw new Error(`requiresGrad: only float tensors can require gradients (this one is ${this.dtype})`);
    }
    if (!value && this.gradFn) throw new Error('requiresGrad: cannot be cleared on a non-leaf tensor; use detach()');
    this.requiresGradFlag = value;
  }

  /** Marks an op output as part of the graph (used by the op machinery). */
  attachGrad(node: GradNode, index: number): void {
    this.gradFn = node;
    this.gradIndex = index;
    this.requiresGradFlag = true;
  }

  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  /** Frees this tensor's reference to its storage. Idempotent. */
  dispose(): void {
    const s = this.storageRef;
    if (!s) return;
    this.storageRef = null;
    collected.unregister(this);
    s.release();
    this.grad?.dispose();
    this.grad = null;
  }

  /**
   * Makes this tensor hold `value`'s data (sharing its storage, no copy): how parameters are updated in
   * place. Shapes and dtypes must match; the graph is not involved.
   */
  assign(value: Tensor): this {
    if (value.shape.join() !== this.shape.join() || value.dtype !== this.dtype) {
      throw new Error(
        `assign: value ${formatShape(value.shape)} ${value.dtype} does not match ${formatShape(this.shape)} ${this.dtype}`,
      );
    }
    return this.share(value);
  }

  /**
   * Makes this tensor hold `value`'s data and dtype (PyTorch's `t.data = value`): how `Module.half()` converts
   * parameters that modules hold by reference. Shapes must match; gradients are dropped.
   */
  setData(value: Tensor): this {
    if (value.shape.join() !== this.shape.join()) {
      throw new Error(`setData: value ${formatShape(value.shape)} does not match ${formatShape(this.shape)}`);
    }
    if (this.requiresGrad && !isFloatDType(value.dtype))
      throw new Error(`setData: a tensor that requires grad cannot become ${value.dtype}`);
    this.grad?.dispose();
    this.grad = null;
    this.dtypeValue = value.dtype;
    return this.share(value);
  }

  /** Takes a reference to `value`'s storage in place of this tensor's own. */
  private share(value: Tensor): this {
    const next = value.storage.retain();
    const prev = this.storage;
    collected.unregister(this);
    collected.register(this, next, this);
    this.storageRef = next;
    prev.release();
    return this;
  }

  /** A new tensor object sharing this storage (and shape), outside the graph. */
  alias(shape: readonly number[] = this.shape): Tensor {
    return new Tensor(this.storage.retain(), shape, this.dtype);
  }

  /** Shares storage, cut from the autograd graph. */
  detach(): Tensor {
    return this.alias();
  }

  private async readBytes(): Promise<ArrayBuffer> {
    const storage = this.storage;
    if (storage instanceof HostStorage) {
      // Host values are read without the device (a copy, as a device read gives).
      if (!storage.values)
        throw new Error(`${storage.what} is in host memory with undefined values (nothing was loaded into it)`);
      return storage.values.slice().buffer as ArrayBuffer;
    }
    return storage.device.read(storage.entry, this.byteLength);
  }

  /** Copies the values to the CPU as float32 (int32 tensors are converted, exact below 2^24; float16 exactly). */
  async data(): Promise<Float32Array> {
    const bytes = await this.readBytes();
    if (this.dtype === 'float16') return halfToFloat(new Uint16Array(bytes));
    return this.dtype === 'int32' ? Float32Array.from(new Int32Array(bytes)) : new Float32Array(bytes);
  }

  /** The raw IEEE half bits of a float16 tensor. */
  async halfBits(): Promise<Uint16Array> {
    if (this.dtype !== 'float16') throw new Error(`halfBits: tensor is ${this.dtype}; use data()`);
    return new Uint16Array(await this.readBytes());
  }

  /** Copies the values of an int32 tensor to the CPU. */
  async intData(): Promise<Int32Array> {
    if (this.dtype !== 'int32') throw new Error(`intData: tensor is ${this.dtype}; use data()`);
    return new Int32Array(await this.readBytes());
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1)
      throw new Error(`item: expected a tensor with one element, got shape ${formatShape(this.shape)}`);
    return (await this.data())[0]!;
  }

  /** Values as nested arrays of the tensor's shape. */
  async array(): Promise<unknown> {
    const flat = Array.from(await this.data());
    const nest = (dim: number, offset: number): unknown => {
      if (dim === this.shape.length) return flat[offset];
      const stride = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim]! }, (_, i) => nest(dim + 1, offset + i * stride));
    };
    return nest(0, 0);
  }

  /**
   * Shape and dtype only: the values live on the GPU and WebGPU reads them back asynchronously only, so a
   * synchronous toString (and Node's inspect / console.log) cannot show them; use toStringAsync() or print().
   */
  toString(): string {
    const state = this.isDisposed ? ', disposed' : this.requiresGrad ? ', requiresGrad' : '';
    return `Tensor(${formatShape(this.shape)}, ${this.dtype}${state})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  /** The values as PyTorch's repr prints them (over 1000 elements summarised with '...'), after a readback. */
  async toStringAsync(): Promise<string> {
    if (this.isDisposed) return this.toString();
    const values = await this.data();
    const summarised = this.size > 1000;
    const extra = [
      ...(summarised ? [`shape=${formatShape(this.shape)}`] : []),
      ...(this.dtype === 'float32' ? [] : [`dtype=${this.dtype}`]),
      "device='webgpu'",
      ...(this.requiresGrad ? ['requiresGrad=true'] : []),
    ];
    const prefix = 'tensor(';
    return `${prefix}${formatValues(values, this.shape, this.dtype === 'int32', prefix.length)}, ${extra.join(', ')})`;
  }

  /** Reads the values back and prints them (console.log) as toStringAsync() writes them. */
  async print(): Promise<void> {
    console.log(await this.toStringAsync());
  }
}

setTensorCheck((v): v is Tensor => v instanceof Tensor);
