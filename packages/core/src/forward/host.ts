/**
 * Tensors held in host memory (`HostStorage`): making them, converting their values between float dtypes on
 * the host, and uploading them to the device. The host conversions round as `cast` does (float32 to float16 to
 * nearest even, float16 to float32 exactly), so a value converted here equals the device's conversion.
 */
import { activeDevice } from '../device/device.js';
import { floatToHalf, halfToFloat } from '../tensor/half.js';
import { HostStorage, type HostValues } from '../tensor/host-storage.js';
import { assertShape, formatShape, sizeOf } from '../tensor/shape.js';
import { Storage } from '../tensor/storage.js';
import { BYTES_PER_ELEMENT, type DType, Tensor } from '../tensor/tensor.js';
import { tensor, tensorFromHalfBits } from './creation.js';

const ARRAY_OF = { float32: Float32Array, float16: Uint16Array, int32: Int32Array } as const;

/**
 * A tensor whose `values` stay in host memory (no device buffer; null: undefined contents). `what` names it in
 * the error a device use raises, `remedy` says what to do instead.
 */
export function hostTensor(
  values: HostValues | null,
  shape: readonly number[],
  dtype: DType,
  what: string,
  remedy: string,
): Tensor {
  assertShape('hostTensor', shape);
  const n = sizeOf(shape);
  if (values && (!(values instanceof ARRAY_OF[dtype]) || values.length !== n))
    throw new Error(
      `hostTensor (${what}): a ${dtype} tensor of shape ${formatShape(shape)} needs a ${ARRAY_OF[dtype].name} of ${n} values, got a ${values.constructor.name} of ${values.length}`,
    );
  return new Tensor(
    new HostStorage(activeDevice(), n * BYTES_PER_ELEMENT[dtype], values, what, remedy),
    [...shape],
    dtype,
  );
}

/** The host values of a tensor in host memory (null: undefined contents); throws for a tensor on the device. */
export function hostValuesOf(t: Tensor): HostValues | null {
  const s = t.storage;
  if (!(s instanceof HostStorage))
    throw new Error(`hostValuesOf: the ${t.dtype} tensor ${formatShape(t.shape)} is on the device`);
  return s.values;
}

/** Float values converted to the other float dtype on the host (rounded as `cast` rounds; null stays null). */
export function convertHostValues(values: HostValues | null, from: DType, to: DType): HostValues | null {
  if (from === to || !values) return values;
  if (from === 'float32' && to === 'float16') return floatToHalf(values as Float32Array);
  if (from === 'float16' && to === 'float32') return halfToFloat(values as Uint16Array);
  throw new Error(`convertHostValues: no host conversion from ${from} to ${to} (float32 <-> float16 only)`);
}

/** A device tensor of `values` (null: a storage that takes a buffer on first use, contents undefined). */
export function deviceTensorOf(values: HostValues | null, shape: readonly number[], dtype: DType): Tensor {
  if (!values)
    return new Tensor(new Storage(activeDevice(), null, sizeOf(shape) * BYTES_PER_ELEMENT[dtype]), shape, dtype);
  if (dtype === 'float16') return tensorFromHalfBits(values as Uint16Array, shape);
  return tensor(values as Float32Array | Int32Array, shape, dtype);
}

/** A device copy of a tensor in host memory (its values uploaded, bit for bit). */
export const uploadHostTensor = (t: Tensor): Tensor => deviceTensorOf(hostValuesOf(t), t.shape, t.dtype);
