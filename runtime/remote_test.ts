import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryStorage } from "../backends/memory.ts";
import { NotFoundError } from "../format/errors.ts";
import { Barrier, BATCH, END_OF_INPUT, RecordBatch, Watermark } from "./channel.ts";
import { CreditBatcher, decodeElement, encodeElement, fromWire, RelayStorage, RemoteSender, serveStorage, type StorageRequest, toWire } from "./_remote.ts";

const noTarget = () => ({ kind: "checkpoint" as const, sid: 0, uri: "memory:x", dir: "" });

test("a record batch crosses as one moved buffer; the receiver gets keys back from the selector", () => {
  const values = [{ user: "a", n: 1, big: 2n ** 40n, skip: undefined }, { user: "b", n: 2 ** 40, bytes: new Uint8Array([1, 2]) }];
  const { wire, transfer } = encodeElement(new RecordBatch(values, ["a", "b"], [3, 7]), noTarget);
  assert.equal(transfer.length, 2);
  const el = decodeElement(structuredClone(wire, { transfer }), () => assert.fail("no barrier"), (v) => (v as { user: string }).user);
  assert.equal(el.tag, BATCH);
  const b = el as RecordBatch;
  assert.deepEqual(b.values, [{ user: "a", n: 1, big: 2n ** 40n }, { user: "b", n: 2 ** 40, bytes: new Uint8Array([1, 2]) }]);
  assert.deepEqual(b.keys, ["a", "b"]);
  assert.deepEqual(b.kgs, [3, 7]);
});

/** The keys a for…in walk of a message visits, as Deno's worker does for every message it receives. */
function keysWalked(message: unknown): number {
  let visited = 0;
  const walk = (x: unknown): void => {
    if (x === null || typeof x !== "object") return;
    for (const k in x) {
      visited++;
      walk((x as Record<string, unknown>)[k]);
    }
  };
  walk(message);
  return visited;
}

test("a record batch's message has a few enumerable keys whatever its size (Deno's worker walks each message with for…in)", () => {
  const values = Array.from({ length: 1000 }, (_, i) => ({ user: `u${i}`, n: i }));
  const { wire } = encodeElement(new RecordBatch(values, values.map((v) => v.user), values.map((_, i) => i % 128)), noTarget);
  const visited = keysWalked({ t: "data", c: 0, el: wire });
  assert.ok(visited <= 10, `a for…in walk visited ${visited} keys`);
});

test("a storage read's reply to a worker has a few enumerable keys whatever the size of the bytes", async () => {
  const real = new MemoryStorage();
  await real.put("a/chunk", new Uint8Array(100_000));
  for (const r of [{ op: "get", args: ["a/chunk"] }, { op: "getRange", args: ["a/chunk", 10, 50_000] }] as const) {
    const { reply } = await serveStorage(real, { t: "storage", req: 1, sid: 0, ...r });
    const visited = keysWalked(reply);
    assert.ok(visited <= 10, `a for…in walk of the ${r.op} reply visited ${visited} keys`);
  }
});

test("the credit of elements taken in one turn goes back as one message per channel", async () => {
  const sent: [number, number][] = [];
  const credits = new CreditBatcher((c, n) => sent.push([c, n]));
  credits.take(3);
  credits.take(3);
  credits.take(5);
  credits.take(3);
  assert.deepEqual(sent, []);
  await Promise.resolve();
  assert.deepEqual(sent, [[3, 3], [5, 1]]);
  credits.take(5);
  await Promise.resolve();
  assert.deepEqual(sent, [[3, 3], [5, 1], [5, 1]]);
});

test("barriers carry where their chunks go; watermarks and the end cross as they are", () => {
  const spec = { kind: "savepoint" as const, sid: 2, uri: "memory:s", dir: "savepoints/sp-1" };
  const { wire } = encodeElement(new Barrier(4, "savepoint", true), () => spec);
  let seen: unknown;
  const one = new Barrier(4, "savepoint", true);
  assert.equal(decodeElement(wire, (w) => ((seen = w.target), one)), one);
  assert.deepEqual(seen, spec);
  const w = decodeElement(encodeElement(new Watermark(Infinity, true), noTarget).wire, () => one) as Watermark;
  assert.deepEqual([w.timestamp, w.idle], [Infinity, true]);
  assert.equal(decodeElement(encodeElement(END_OF_INPUT, noTarget).wire, () => one), END_OF_INPUT);
});

test("a remote sender is full at capacity until the consumer grants credit", async () => {
  const sent: unknown[] = [];
  const s = new RemoteSender(0, 2, (el) => sent.push(el));
  s.push(END_OF_INPUT);
  s.push(END_OF_INPUT);
  assert.equal(s.full, true);
  let released = false;
  const wait = s.waitSpace().then(() => (released = true));
  await Promise.resolve();
  assert.equal(released, false);
  s.credit(1);
  await wait;
  assert.equal(s.full, false);
  assert.equal(sent.length, 2);
});

test("a closed remote sender is never full (a producer waiting for space must not spin)", async () => {
  const s = new RemoteSender(0, 1, () => {});
  s.push(END_OF_INPUT);
  s.close();
  assert.equal(s.full, false);
  await s.waitSpace();
  s.push(END_OF_INPUT); // dropped
  assert.equal(s.full, false);
});

test("errors keep their name, code and kind across threads", () => {
  const e = fromWire(structuredClone(toWire(new NotFoundError("get", "memory:x/a"))));
  assert.ok(e instanceof NotFoundError);
  assert.equal(e.name, "NotFoundError");
  const plain = fromWire(toWire(new RangeError("bad")));
  assert.equal(plain.name, "RangeError");
  assert.equal(plain.message, "bad");
});

test("a relay storage runs every operation on the main thread's storage", async () => {
  const real = new MemoryStorage();
  const relay = new RelayStorage(real.uri, 0, (m, transfer) => {
    void serveStorage(real, structuredClone(m, { transfer }) as StorageRequest).then(({ reply, transfer: back }) => RelayStorage.reply(structuredClone(reply, { transfer: back })));
  });
  const bytes = new Uint8Array([1, 2, 3]);
  await relay.put("a/b", bytes);
  assert.equal(bytes.byteLength, 3); // the caller's bytes stay readable (a copy moved)
  assert.equal(await relay.putIfAbsent("a/b", new Uint8Array([9])), false);
  assert.deepEqual(await relay.get("a/b"), new Uint8Array([1, 2, 3]));
  assert.deepEqual(await real.get("a/b"), new Uint8Array([1, 2, 3])); // the storage keeps its own bytes
  assert.deepEqual(await relay.getRange("a/b", 1, 5), new Uint8Array([2, 3]));
  assert.equal(await relay.exists("a/b"), true);
  const listed: string[] = [];
  for await (const o of relay.list("a/")) listed.push(o.path);
  assert.deepEqual(listed, ["a/b"]);
  await relay.delete(["a/b"]);
  await assert.rejects(relay.get("a/b"), NotFoundError);
});
