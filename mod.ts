/**
 * arrowpoint: Arrow-native checkpoints and savepoints for keyed streaming state, with a compact streaming
 * runtime and offline snapshot tools, for Node and Deno.
 *
 * This module only re-exports: every name a user imports comes from here.
 *
 * @example Key groups exactly as Apache Flink computes them
 * ```ts
 * import assert from "node:assert/strict";
 * import { assignKeyGroup, keyGroupRangeFor, operatorIndexFor } from "./mod.ts";
 * const kg = assignKeyGroup("user-000123", 128); // 54
 * assert.equal(operatorIndexFor(kg, 4, 128), 1);
 * assert.deepEqual(keyGroupRangeFor(1, 4, 128), { start: 32, end: 63 });
 * ```
 *
 * @module
 */

// format/: errors, key groups, manifest, chunks
export {
  AlreadyExistsError,
  ArrowpointError,
  type ArrowpointErrorOptions,
  ChecksumMismatchError,
  DamagedShardError,
  DestinationExistsError,
  ForeignShardError,
  IncompatibleSnapshotError,
  InvalidUriError,
  KeyGroupError,
  type Location,
  ManifestSchemaError,
  MigrationError,
  MissingShardError,
  NotFoundError,
  PathEscapeError,
  SchemaViolationError,
  ShardError,
  ShardReceiptError,
  SnapshotFormatError,
  StorageError,
  UnsupportedFormatVersionError,
} from "./format/errors.ts";
export {
  assignKeyGroup,
  defaultMaxParallelism,
  javaHashCode,
  type Key,
  type KeyGroupRange,
  keyGroupRangeFor,
  murmurHash,
  operatorIndexFor,
  UPPER_BOUND_MAX_PARALLELISM,
} from "./format/key_group.ts";
export {
  type ChunkCompression,
  type ChunkRef,
  FORMAT_VERSION,
  HASH_FUNCTION,
  type Manifest,
  MANIFEST_FILE,
  type OperatorSnapshot,
  readManifest,
  type StateSnapshot,
  writeManifest,
} from "./format/manifest.ts";
export { MANIFEST_SCHEMA } from "./format/manifest_schema.ts";
export type { Field, FieldType, KeyType, Redistribution, ScalarType, StateKind, StateLayout, ValueEncoding } from "./format/state_layout.ts";
export { type ChunkRows, type Compression, type EncodedChunk, encodeChunk, type EncodeChunkOptions } from "./format/encode_chunk.ts";
export { type ChunkReadInfo, type DecodedChunk, decodeChunk, readKeyGroupRange } from "./format/decode_chunk.ts";
export { sliceChunk } from "./format/chunk_slice.ts";
export { checksumOf, verifyChecksum } from "./format/checksum.ts";
export { VERSION } from "./format/version.ts";

// backends/: where bytes live
export {
  BaseStorage,
  FsStorage,
  MemoryStorage,
  type ObjectInfo,
  openStorage,
  type OpenStorageOptions,
  S3Storage,
  type S3Credentials,
  type S3StorageOptions,
  type Storage,
  subStorage,
  type SyncDeferredOptions,
} from "./backends/mod.ts";

// snapshot/: snapshots over storage
export {
  applyRetention,
  commitShards,
  type CommitReport,
  type CommitShardsOptions,
  copySnapshot,
  type CopyReport,
  DEFAULT_GC_GRACE_MS,
  findUnreferenced,
  gc,
  type GcOptions,
  type GcReport,
  latestCheckpoint,
  type ManifestHeader,
  openSnapshot,
  parseShard,
  readState,
  type Rows,
  type RetentionOptions,
  type RetentionReport,
  SHARDS_DIR,
  type ShardOperator,
  type ShardReceipt,
  type ShardSpec,
  type Snapshot,
  type Unreferenced,
} from "./snapshot/mod.ts";

// runtime/: the streaming runtime
export * from "./runtime/mod.ts";
export type { SnapshotInfo } from "./runtime/mod.ts";

// migrate/: offline tools
export * from "./migrate/mod.ts";
export type { SnapshotInfo as InspectReport } from "./migrate/mod.ts";
