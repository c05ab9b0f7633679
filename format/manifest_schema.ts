/**
 * The JSON Schema (draft-07) of `_manifest.json`, format version 1. `format/manifest.schema.json` is the same
 * document as a file for other languages' validators; a test keeps the two identical.
 *
 * @module
 */

const KEY_TYPE = { enum: ["string", "int32", "int64", "float64", "bytes", "msgpack"] };
const SCALAR = {
  enum: [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "utf8", "dictionary", "binary", "timestamp",
  ],
};
const COUNT = { type: "integer", minimum: 0, maximum: 9007199254740991 };
const NAME = { type: "string", minLength: 1, maxLength: 512 };

/**
 * The manifest JSON Schema, as a plain object for ajv.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MANIFEST_SCHEMA } from "./manifest_schema.ts";
 * assert.equal(MANIFEST_SCHEMA.$id, "https://arrowpoint.dev/schema/manifest-v1.json");
 * ```
 */
export const MANIFEST_SCHEMA: { $id: string } & Record<string, unknown> = {
  $schema: "http://json-schema.org/draft-07/schema#",
  $id: "https://arrowpoint.dev/schema/manifest-v1.json",
  title: "arrowpoint snapshot manifest, format version 1",
  type: "object",
  additionalProperties: false,
  required: ["format", "formatVersion", "kind", "id", "createdAt", "writer", "job", "maxParallelism", "hash", "chunkRoot", "operators"],
  properties: {
    format: { const: "arrowpoint" },
    formatVersion: { type: "integer", minimum: 1 },
    kind: { enum: ["checkpoint", "savepoint"] },
    id: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$" },
    checkpointId: COUNT,
    createdAt: { type: "string", minLength: 10, maxLength: 64 },
    writer: {
      type: "object",
      additionalProperties: false,
      required: ["name", "version"],
      properties: { name: NAME, version: { type: "string", maxLength: 64 } },
    },
    job: { type: "string", maxLength: 512 },
    maxParallelism: { type: "integer", minimum: 1, maximum: 32768 },
    hash: { const: "flink-murmur-java-hashcode" },
    chunkRoot: { enum: [".", ".."] },
    metadata: { type: "object", additionalProperties: { type: "string", maxLength: 65536 } },
    checksum: { type: "string", pattern: "^[a-z0-9]+:[0-9a-f]+$" },
    operators: { type: "array", maxItems: 100000, items: { $ref: "#/definitions/operator" } },
  },
  definitions: {
    operator: {
      type: "object",
      additionalProperties: false,
      required: ["uid", "parallelism", "states"],
      properties: {
        uid: NAME,
        name: { type: "string", maxLength: 512 },
        parallelism: { type: "integer", minimum: 1, maximum: 32768 },
        states: { type: "array", items: { $ref: "#/definitions/state" } },
      },
    },
    state: {
      type: "object",
      additionalProperties: false,
      required: ["name", "kind", "keyed", "value", "schemaVersion", "chunks"],
      properties: {
        name: NAME,
        kind: { enum: ["value", "list", "map", "reducing", "aggregating", "operator-list"] },
        keyed: { type: "boolean" },
        keyType: KEY_TYPE,
        userKeyType: KEY_TYPE,
        namespaced: { type: "boolean" },
        value: { $ref: "#/definitions/valueEncoding" },
        schemaVersion: { type: "integer", minimum: 1 },
        redistribution: { enum: ["split", "union", "broadcast"] },
        ttlMs: { type: "integer", minimum: 1 },
        chunks: { type: "array", items: { $ref: "#/definitions/chunk" } },
      },
    },
    valueEncoding: {
      oneOf: [
        {
          type: "object",
          additionalProperties: false,
          required: ["encoding", "type"],
          properties: { encoding: { const: "arrow" }, type: { $ref: "#/definitions/fieldType" } },
        },
        {
          type: "object",
          additionalProperties: false,
          required: ["encoding"],
          properties: { encoding: { const: "msgpack" }, jsonSchema: { type: "object" } },
        },
      ],
    },
    fieldType: {
      oneOf: [
        SCALAR,
        {
          type: "object",
          additionalProperties: false,
          required: ["struct"],
          properties: { struct: { type: "array", maxItems: 4096, items: { $ref: "#/definitions/field" } } },
        },
        {
          type: "object",
          additionalProperties: false,
          required: ["list"],
          properties: { list: { $ref: "#/definitions/fieldType" } },
        },
      ],
    },
    field: {
      type: "object",
      additionalProperties: false,
      required: ["name", "type"],
      properties: { name: NAME, type: { $ref: "#/definitions/fieldType" }, nullable: { type: "boolean" } },
    },
    chunk: {
      type: "object",
      additionalProperties: false,
      required: ["path", "rows", "bytes", "checksum", "compression", "type", "order"],
      properties: {
        path: { type: "string", minLength: 1, maxLength: 1024 },
        keyGroupRange: {
          type: "object",
          additionalProperties: false,
          required: ["start", "end"],
          properties: {
            start: { type: "integer", minimum: 0, maximum: 32767 },
            end: { type: "integer", minimum: 0, maximum: 32767 },
          },
        },
        subtask: { type: "integer", minimum: 0, maximum: 32767 },
        rows: COUNT,
        bytes: COUNT,
        rawBytes: COUNT,
        checksum: { type: "string", pattern: "^[a-z0-9]+:[0-9a-f]+$" },
        compression: { enum: ["none", "deflate"] },
        type: { enum: ["base", "delta"] },
        order: COUNT,
      },
    },
  },
};
