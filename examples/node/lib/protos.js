'use strict';
// Load the gymwire.v1 contract at run time from the .proto files (no generated code).

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// The repository's protos/ folder; override with GYMWIRE_PROTOS=/path/to/protos.
const PROTO_ROOT = process.env.GYMWIRE_PROTOS || path.resolve(__dirname, '..', '..', '..', 'protos');
const ENV_PROTO = 'gymwire/v1/environment.proto';

// keepCase: fields keep their .proto names (session_id, step_index, ...).
// defaults: unset scalars read as their zero value. oneofs: a oneof's set member is named
// (request.target === 'task_id'), and so is the presence of proto3 `optional` fields
// (request._step_index === 'step_index'). longs: uint64 as decimal strings.
const LOAD_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

function loadEnvironmentProto(root = PROTO_ROOT) {
  const packageDefinition = protoLoader.loadSync(ENV_PROTO, { ...LOAD_OPTIONS, includeDirs: [root] });
  const loaded = grpc.loadPackageDefinition(packageDefinition);
  return { packageDefinition, gymwire: loaded.gymwire.v1 };
}

// google.protobuf.Struct <-> plain JS objects (numbers, strings, booleans, null, arrays, objects).
function toValue(v) {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v) };
}

function toStruct(obj) {
  const fields = {};
  for (const [k, v] of Object.entries(obj || {})) fields[k] = toValue(v);
  return { fields };
}

function fromValue(v) {
  if (!v) return null;
  switch (v.kind) {
    case 'numberValue': return v.numberValue;
    case 'stringValue': return v.stringValue;
    case 'boolValue': return v.boolValue;
    case 'listValue': return (v.listValue.values || []).map(fromValue);
    case 'structValue': return fromStruct(v.structValue);
    default: return null;
  }
}

function fromStruct(s) {
  const out = {};
  for (const [k, v] of Object.entries((s && s.fields) || {})) out[k] = fromValue(v);
  return out;
}

module.exports = { PROTO_ROOT, loadEnvironmentProto, toStruct, fromStruct };
