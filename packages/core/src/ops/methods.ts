import { backward } from '../autograd/engine.js';
import { Tensor } from '../tensor/tensor.js';
import { cast } from './cast.js';
import * as ew from './elementwise.js';
import { matmul } from './matmul.js';
import * as red from './reduce.js';
import * as shp from './shape.js';
import { logSoftmax, softmax } from './softmax.js';

/** Method-call sugar for the functional ops (`x.add(y).relu().sum()`), declared on the Tensor class. */
const P = Tensor.prototype;
P.backward = function (grad, options) {
  backward(this, grad, options);
};
P.add = function (o) {
  return ew.add(this, o);
};
P.sub = function (o) {
  return ew.sub(this, o);
};
P.mul = function (o) {
  return ew.mul(this, o);
};
P.div = function (o) {
  return ew.div(this, o);
};
P.pow = function (o) {
  return ew.pow(this, o);
};
P.neg = function () {
  return ew.neg(this);
};
P.exp = function () {
  return ew.exp(this);
};
P.log = function () {
  return ew.log(this);
};
P.sqrt = function () {
  return ew.sqrt(this);
};
P.abs = function () {
  return ew.abs(this);
};
P.relu = function () {
  return ew.relu(this);
};
P.sigmoid = function () {
  return ew.sigmoid(this);
};
P.tanh = function () {
  return ew.tanh(this);
};
P.silu = function () {
  return ew.silu(this);
};
P.square = function () {
  return ew.square(this);
};
P.clamp = function (lo, hi) {
  return ew.clamp(this, lo, hi);
};
P.sum = function (axes, keepdim) {
  return red.sum(this, axes, keepdim);
};
P.mean = function (axes, keepdim) {
  return red.mean(this, axes, keepdim);
};
P.max = function (axes, keepdim) {
  return red.max(this, axes, keepdim);
};
P.min = function (axes, keepdim) {
  return red.min(this, axes, keepdim);
};
P.argmax = function (axis, keepdim) {
  return red.argmax(this, axis, keepdim);
};
P.reshape = function (shape) {
  return shp.reshape(this, shape);
};
P.flatten = function (s, e) {
  return shp.flatten(this, s, e);
};
P.squeeze = function (axes) {
  return shp.squeeze(this, axes);
};
P.unsqueeze = function (axis) {
  return shp.unsqueeze(this, axis);
};
P.permute = function (dims) {
  return shp.permute(this, dims);
};
P.transpose = function (a, b) {
  return shp.transpose(this, a, b);
};
P.expand = function (shape) {
  return shp.expand(this, shape);
};
P.matmul = function (o) {
  return matmul(this, o);
};
P.softmax = function (axis) {
  return softmax(this, axis);
};
P.logSoftmax = function (axis) {
  return logSoftmax(this, axis);
};
P.to = function (dtype) {
  return cast(this, dtype);
};
P.half = function () {
  return cast(this, 'float16');
};
P.float = function () {
  return cast(this, 'float32');
};
