// GET bodies are copied into one buffer of the announced Content-Length as they arrive; a body that ends
// early or runs past that length is a named StorageError, never a short or overrun result.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { S3Client } from "@aws-sdk/client-s3";
import { StorageError } from "../format/errors.ts";
import { S3Storage } from "./s3.ts";

/** A client whose every GetObject answers with `chunks` and the given Content-Length / Content-Range. */
function answering(chunks: Uint8Array[], contentLength: number | undefined, contentRange?: string): S3Client {
  const body = {
    async *[Symbol.asyncIterator]() {
      for (const c of chunks) yield c;
    },
    transformToByteArray: () => Promise.reject(new Error("the chunks were to be streamed, not collected")),
  };
  return { send: () => Promise.resolve({ Body: body, ContentLength: contentLength, ContentRange: contentRange }) } as unknown as S3Client;
}

const bytes = (...xs: number[]) => new Uint8Array(xs);

test("get assembles the chunks of a body into one buffer of its Content-Length", async () => {
  const s = new S3Storage("my-bucket", "p", { client: answering([bytes(1, 2), bytes(3), bytes(4, 5, 6)], 6) });
  const got = await s.get("a");
  assert.deepEqual(got, bytes(1, 2, 3, 4, 5, 6));
  assert.equal(got.buffer.byteLength, 6, "one buffer of exactly the announced size");
  await s.close();
});

test("getRange slices the body by the Content-Range the server sent", async () => {
  const s = new S3Storage("my-bucket", "p", { client: answering([bytes(10, 11, 12, 13)], 4, "bytes 0-3/4") });
  assert.deepEqual(await s.getRange("a", 1, 2), bytes(11, 12));
  await s.close();
});

test("a body shorter than its Content-Length is a StorageError, not a short result", async () => {
  const s = new S3Storage("my-bucket", "p", { client: answering([bytes(1, 2), bytes(3)], 5) });
  await assert.rejects(s.get("a"), (e: unknown) => e instanceof StorageError && e.location === "s3://my-bucket/p/a" && /ended after 3 of 5 bytes/.test(e.message));
  await s.close();
});

test("a body longer than its Content-Length is a StorageError, not an overrun", async () => {
  const s = new S3Storage("my-bucket", "p", { client: answering([bytes(1, 2), bytes(3, 4)], 3) });
  await assert.rejects(s.getRange("a", 0, 3), (e: unknown) => e instanceof StorageError && /more than the 3 bytes its Content-Length announced/.test(e.message));
  await s.close();
});
