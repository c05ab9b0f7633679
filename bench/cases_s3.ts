/**
 * s3.put / s3.get: the full snapshot's chunk bytes to and from S3, against s3rver on loopback (started
 * here), through the S3 backend.
 *
 * @module
 */
import { S3Storage } from "../backends/s3.ts";
import { startS3Server, type S3TestServer } from "../backends/_s3_test_server.ts";
import type { BenchCase } from "./harness.ts";
import type { BenchContext } from "./cases_baseline.ts";

/**
 * The S3 cases.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cases } from "./cases_s3.ts";
 * import type { BenchContext } from "./cases_baseline.ts";
 * import { generateData } from "./data.ts";
 * const ctx: BenchContext = { data: generateData(100), dir: ".", snapshotBytes: () => new Uint8Array(0) };
 * const list = cases(ctx); // the s3rver starts in the first case's beforeAll
 * assert.deepEqual(list.map((c) => c.name), ["s3.put", "s3.get"]);
 * ```
 */
export function cases(ctx: BenchContext): BenchCase[] {
  let server: S3TestServer | undefined;
  let storage: S3Storage | undefined;
  let got = 0;
  const start = async () => {
    server ??= await startS3Server();
    storage ??= new S3Storage(server.bucket, "bench", server.storageOptions);
  };
  const stop = async () => {
    await storage?.close();
    await server?.stop();
    storage = undefined;
    server = undefined;
  };
  return [
    {
      name: "s3.put",
      what: "the full snapshot's bytes to S3 (s3rver on loopback; multipart above 16 MiB)",
      group: "arrowpoint",
      rows: ctx.data.rows,
      bytes: () => ctx.snapshotBytes().length,
      beforeAll: start,
      run: async () => {
        await storage!.put("chunk.arrow", ctx.snapshotBytes());
      },
    },
    {
      name: "s3.get",
      what: "the same bytes back from S3",
      group: "arrowpoint",
      rows: ctx.data.rows,
      bytes: () => ctx.snapshotBytes().length,
      beforeAll: async () => {
        await start();
        await storage!.put("chunk.arrow", ctx.snapshotBytes());
      },
      run: async () => {
        got = (await storage!.get("chunk.arrow")).length;
      },
      afterAll: async () => {
        if (got !== ctx.snapshotBytes().length) throw new Error("s3.get returned other bytes");
        await stop();
      },
    },
  ];
}
