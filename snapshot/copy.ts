/**
 * Copying a snapshot between any two storages (filesystem, S3, memory), verifying every checksum and
 * committing the manifest last.
 *
 * @module
 */
import { openStorage } from "../backends/open.ts";
import type { Storage } from "../backends/storage.ts";
import { AlreadyExistsError } from "../format/errors.ts";
import { MAX_MANIFEST_BYTES, readManifest, writeManifest } from "../format/manifest.ts";
import { checkDestination } from "./destination.ts";
import { manifestPath } from "./layout.ts";
import { readVerifiedChunk } from "./chunks.ts";
import { openSnapshot, type Snapshot } from "./read.ts";

/** What {@link copySnapshot} copied. */
export interface CopyReport {
  /** Number of chunk files copied. */
  chunks: number;
  /** Bytes copied (chunks and manifest). */
  bytes: number;
  /** The destination URI. */
  destination: string;
}

/**
 * Copies a snapshot to `dst` (a URI or a Storage, whose root becomes the snapshot folder). A savepoint is
 * copied byte for byte, manifest included; a checkpoint becomes self-contained (its shared chunks are
 * copied into the folder and the manifest's `chunkRoot` becomes `"."`). Every chunk's checksum is verified
 * on the way; the manifest is written last and only if `dst` has none. A destination that already holds a
 * snapshot, or is the source, inside it or around it, is refused before anything is copied.
 *
 * @example
 * ```ts
 * import { copySnapshot } from "./copy.ts";
 * // await copySnapshot("./ckpt/savepoints/sp-1", "s3://bucket/backup/sp-1");
 * ```
 */
export async function copySnapshot(src: string | Snapshot, dst: string | Storage, options: { concurrency?: number } = {}): Promise<CopyReport> {
  const snap = typeof src === "string" ? await openSnapshot(src) : src;
  const target = typeof dst === "string" ? await openStorage(dst) : dst;
  try {
    await checkDestination(snap, target);
    const refs = new Map<string, (typeof snap.manifest.operators)[number]["states"][number]["chunks"][number]>();
    for (const op of snap.manifest.operators) for (const st of op.states) for (const c of st.chunks) refs.set(c.path, c);
    const queue = [...refs.values()];
    let bytes = 0;
    const worker = async () => {
      for (let ref = queue.shift(); ref; ref = queue.shift()) {
        const data = await readVerifiedChunk(snap, ref);
        await target.put(ref.path, data);
        bytes += data.length;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
    let manifestBytes: Uint8Array;
    if (snap.manifest.chunkRoot === ".") {
      manifestBytes = await snap.storage.getRange(manifestPath(snap.dir), 0, MAX_MANIFEST_BYTES + 1);
      readManifest(manifestBytes, `${snap.location}/${manifestPath("")}`); // unchanged since opened, or refused
    } else {
      manifestBytes = writeManifest({ ...snap.manifest, chunkRoot: "." });
    }
    if (!(await target.putIfAbsent(manifestPath(""), manifestBytes))) throw new AlreadyExistsError(`${target.uri}/${manifestPath("")}`);
    return { chunks: refs.size, bytes: bytes + manifestBytes.length, destination: target.uri };
  } finally {
    if (typeof dst === "string") await target.close();
    if (typeof src === "string") await snap.storage.close();
  }
}
