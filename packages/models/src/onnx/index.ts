export {
  readOnnx,
  isFloatType,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  type OnnxAttribute,
  type OnnxValueInfo,
  type OnnxDataType,
} from './reader.js';
export { OnnxGraph, ONNX_SUPPORTED_OPS, ONNX_MIN_OPSET, ONNX_MAX_OPSET, type OnnxGraphInfo } from './graph.js';
