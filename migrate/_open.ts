// Private: opening a source snapshot from a URI or taking an opened one, closing only what was opened here.
//
// Shards of one run started one after another in one process (the bench's `…shards8`, a worker thread
// given several shards, a script looping over `--shard i/N`) each open the same source: read, parse and
// validate its manifest. The last source opened is kept: the next open of the same location still reads the
// manifest's bytes (cheap, and the only way to notice a source rewritten in place), and when they are the
// very same bytes it takes the parsed manifest instead of parsing and validating it again. Only a snapshot
// whose manifest sits at the URI itself is kept (a savepoint or a checkpoint folder); a checkpoint root is
// resolved afresh each time (a newer checkpoint may have been committed meanwhile). One entry, let go when
// no open has asked for it for a while; the timer never keeps the process alive.
import { openStorage } from "../backends/open.ts";
import { idleTimer } from "../format/_idle_timer.ts";
import { NotFoundError } from "../format/errors.ts";
import { type Manifest, MAX_MANIFEST_BYTES, readManifest } from "../format/manifest.ts";
import { manifestPath } from "../snapshot/layout.ts";
import { openSnapshot, type Snapshot } from "../snapshot/read.ts";

/** How long the last source opened is kept without another open of it. */
const IDLE_MS = 10_000;

let kept: { location: string; bytes: Uint8Array; manifest: Manifest; timer: ReturnType<typeof setTimeout> } | undefined;

function forget(): void {
  if (kept) clearTimeout(kept.timer);
  kept = undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Deep-freezes a kept manifest: every run that takes it shares it, so none may change it. */
function freeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) freeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Opens the snapshot at `src`, reusing the manifest parsed by the previous open of the same location when
 * its stored bytes have not changed (see above).
 */
export async function openSource(src: string): Promise<Snapshot> {
  const storage = await openStorage(src);
  let bytes: Uint8Array | undefined;
  try {
    bytes = await storage.getRange(manifestPath(""), 0, MAX_MANIFEST_BYTES + 1);
  } catch (e) {
    if (!(e instanceof NotFoundError)) {
      await storage.close();
      throw e;
    }
  }
  if (bytes !== undefined) {
    let manifest: Manifest | undefined;
    if (kept && kept.location === src && sameBytes(kept.bytes, bytes)) {
      manifest = kept.manifest;
      clearTimeout(kept.timer);
      kept.timer = idleTimer(forget, IDLE_MS);
    } else {
      try {
        manifest = readManifest(bytes, `${storage.uri.replace(/\/+$/, "")}/${manifestPath("")}`);
      } catch (e) {
        await storage.close();
        throw e;
      }
      if (manifest.chunkRoot === ".") {
        forget();
        kept = { location: src, bytes: bytes.slice(), manifest: freeze(manifest), timer: idleTimer(forget, IDLE_MS) };
      } else manifest = undefined;
    }
    if (manifest) return { manifest, storage, dir: "", chunkBase: "", location: src };
  }
  // No manifest at the URI (a checkpoint root) or one whose chunks live beside it: the one open resolves it.
  await storage.close();
  return await openSnapshot(src);
}

/** Whether a source's manifest is kept now, and where (for tests). */
export function keptSource(): string | undefined {
  return kept?.location;
}

/** Opens `src` (a URI) or uses it (a Snapshot), runs `fn`, and closes the storage if it was opened here. */
export async function withSnapshot<T>(src: string | Snapshot, fn: (snap: Snapshot) => Promise<T>): Promise<T> {
  if (typeof src !== "string") return await fn(src);
  const snap = await openSource(src);
  try {
    return await fn(snap);
  } finally {
    await snap.storage.close();
  }
}
