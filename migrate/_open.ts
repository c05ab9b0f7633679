// Private: opening a source snapshot from a URI or taking an opened one, closing only what was opened here.
import { openSnapshot, type Snapshot } from "../snapshot/read.ts";

/** Opens `src` (a URI) or uses it (a Snapshot), runs `fn`, and closes the storage if it was opened here. */
export async function withSnapshot<T>(src: string | Snapshot, fn: (snap: Snapshot) => Promise<T>): Promise<T> {
  if (typeof src !== "string") return await fn(src);
  const snap = await openSnapshot(src);
  try {
    return await fn(snap);
  } finally {
    await snap.storage.close();
  }
}
