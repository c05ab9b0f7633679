/**
 * The check every writer of a new snapshot from an existing one (copy, compact, rekey, migrate) makes of
 * its destination before any work: not the source, not around it, not inside it, and not a folder that
 * already holds a snapshot.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { DestinationExistsError, IncompatibleSnapshotError } from "../format/errors.ts";
import { manifestPath } from "./layout.ts";
import type { Snapshot } from "./read.ts";

const trim = (uri: string) => uri.replace(/\/+$/, "");

/**
 * Refuses a destination that is the source snapshot, contains it, lies inside its folder (a savepoint
 * nested in itself; a copy inside a checkpoint folder that retention deletes), or already holds a
 * snapshot. Throws `IncompatibleSnapshotError` or `DestinationExistsError`, naming the destination.
 *
 * @example
 * ```ts
 * import { openStorage } from "../backends/open.ts";
 * import { checkDestination } from "./destination.ts";
 * await checkDestination(undefined, await openStorage("memory:destination-example/sp-2")); // nothing there: fine
 * ```
 */
export async function checkDestination(src: Snapshot | undefined, dst: Storage): Promise<void> {
  const dstDir = trim(dst.uri);
  if (src) {
    const srcDir = `${trim(src.storage.uri)}${src.dir ? "/" + src.dir : ""}`;
    if (dstDir === srcDir) {
      throw new IncompatibleSnapshotError(`the destination ${dst.uri} is the source snapshot; tools never write in place, choose a new folder`);
    }
    // A checkpoint's chunks live beside its folder (chunkRoot ".."): its root holds it too.
    if (srcDir.startsWith(dstDir + "/") || (src.manifest.chunkRoot === ".." && dstDir === srcDir.replace(/\/[^/]*$/, ""))) {
      throw new IncompatibleSnapshotError(`the destination ${dst.uri} contains the source snapshot; write the new savepoint into its own folder, e.g. ${dstDir}/savepoints/<id>`);
    }
    if (dstDir.startsWith(srcDir + "/")) {
      throw new IncompatibleSnapshotError(`the destination ${dst.uri} is inside the source ${src.manifest.kind} ${srcDir}; choose a folder outside it`);
    }
  }
  if (await dst.exists(manifestPath(""))) throw new DestinationExistsError(dstDir);
}
