/**
 * Loads `@aws-sdk/client-s3` on first use, never at import: the SDK is large (≈ 300 ms and hundreds of
 * modules to load) and, under Deno, its modules read environment variables while loading, so a program
 * that imports arrowpoint and never touches S3 would otherwise need `--allow-env` and pay the start-up
 * time for nothing. Only `backends/s3.ts` imports this module.
 *
 * @module
 */
import type * as ClientS3 from "@aws-sdk/client-s3";
import { StorageError } from "../format/errors.ts";

/** The module namespace of `@aws-sdk/client-s3`. */
export type S3Sdk = typeof ClientS3;

/** The error code of a failed SDK load: stable, so callers can tell it from an S3 failure. */
export const S3_SDK_UNAVAILABLE = "ARROWPOINT_S3_SDK_UNAVAILABLE";

const importSdk = (): Promise<S3Sdk> => import("@aws-sdk/client-s3");
let importer: () => Promise<S3Sdk> = importSdk;
let loading: Promise<S3Sdk> | undefined;

function describe(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.split("\n")[0];
}

/**
 * The SDK, loaded once per process. A failed load is not cached (a later call tries again) and is a
 * `StorageError` with code {@linkcode S3_SDK_UNAVAILABLE} naming the operation and the location.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadS3Sdk } from "./_s3_sdk.ts";
 * const sdk = await loadS3Sdk("get", "s3://bucket/a");
 * assert.equal(typeof sdk.GetObjectCommand, "function");
 * ```
 */
export function loadS3Sdk(operation: string, location: string): Promise<S3Sdk> {
  loading ??= importer();
  const mine = loading;
  return mine.catch((e: unknown) => {
    if (loading === mine) loading = undefined;
    const name = (e as Error | undefined)?.name;
    const reason = name === "NotCapable" || name === "PermissionDenied"
      // Deno's own advice names only the first permission refused; the SDK needs these three.
      ? `Deno refused it (${describe(e).replace(/, run again with the --allow-\w+ flag$/, "")}); run again with --allow-env --allow-net --allow-read (or -A)`
      : `${describe(e)}; it is a dependency of arrowpoint: reinstall it (npm install @aws-sdk/client-s3) and check that it loads in this runtime`;
    throw new StorageError(operation, location, `cannot load the AWS SDK (@aws-sdk/client-s3), which S3 storage needs: ${reason}`, { cause: e }, S3_SDK_UNAVAILABLE);
  });
}

/**
 * For tests: replaces how the SDK is imported (`undefined` restores the real import) and forgets a
 * loaded SDK, so the next {@linkcode loadS3Sdk} uses the replacement.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadS3Sdk, setS3SdkImporterForTests } from "./_s3_sdk.ts";
 * setS3SdkImporterForTests(() => Promise.reject(new Error("Cannot find package '@aws-sdk/client-s3'")));
 * await assert.rejects(loadS3Sdk("get", "s3://b/a"), /cannot load the AWS SDK/);
 * setS3SdkImporterForTests(undefined);
 * ```
 */
export function setS3SdkImporterForTests(replacement: (() => Promise<S3Sdk>) | undefined): void {
  importer = replacement ?? importSdk;
  loading = undefined;
}
