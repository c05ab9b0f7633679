// The S3 timeout a user can set without code (issue 11, defect 11): ARROWPOINT_S3_TIMEOUT_MS reaches the
// SDK's request handler, and an endpoint that accepts connections but never answers ends in a named error
// that says what to change. Nothing here measures time: the stalled server never answers, so only the
// timeout can end the request.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { StorageError } from "../format/errors.ts";
import { s3ClientConfig, S3Storage } from "./s3.ts";

const VAR = "ARROWPOINT_S3_TIMEOUT_MS";

async function withEnv<T>(value: string | undefined, run: () => Promise<T> | T): Promise<T> {
  const before = process.env[VAR];
  if (value === undefined) delete process.env[VAR];
  else process.env[VAR] = value;
  try {
    return await run();
  } finally {
    if (before === undefined) delete process.env[VAR];
    else process.env[VAR] = before;
  }
}

function handlerTimeouts(options: Parameters<typeof s3ClientConfig>[0] = {}): { connectionTimeout?: number; socketTimeout?: number } {
  return s3ClientConfig(options).requestHandler as { connectionTimeout?: number; socketTimeout?: number };
}

test("ARROWPOINT_S3_TIMEOUT_MS sets the S3 client's connection and socket timeouts; the timeoutMs option wins", async () => {
  // Before: the timeout was 60 s unless code passed timeoutMs; nothing a CLI user could set changed it.
  await withEnv("1234", () => {
    assert.deepEqual(handlerTimeouts(), { connectionTimeout: 1234, socketTimeout: 1234 });
    assert.deepEqual(handlerTimeouts({ timeoutMs: 50 }), { connectionTimeout: 50, socketTimeout: 50 });
  });
  await withEnv(undefined, () => assert.equal(handlerTimeouts().socketTimeout, 60_000));
  for (const bad of ["soon", "0", "-5", "1.5"]) {
    await withEnv(bad, () => assert.throws(() => s3ClientConfig({}), (e: unknown) => e instanceof RangeError && /ARROWPOINT_S3_TIMEOUT_MS must be a positive integer/.test(e.message)));
  }
});

test("a stalled S3 endpoint ends in a StorageError naming the timeout and ARROWPOINT_S3_TIMEOUT_MS", async () => {
  // A loopback server that accepts every connection and never sends a byte.
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await withEnv("200", async () => {
      const storage = new S3Storage("stalled-bucket", "p", {
        endpoint: `http://127.0.0.1:${port}`,
        region: "us-east-1",
        credentials: { accessKeyId: "test", secretAccessKey: "test" },
        maxAttempts: 1,
      });
      try {
        await assert.rejects(storage.get("x"), (e: unknown) => {
          assert.ok(e instanceof StorageError, String(e));
          assert.match(e.message, /^get s3:\/\/stalled-bucket\/p\/x failed: the S3 endpoint did not answer within 200 ms .*raise ARROWPOINT_S3_TIMEOUT_MS/);
          return true;
        });
      } finally {
        await storage.close();
      }
    });
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
