import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidUriError } from "../format/errors.ts";
import { clearMemoryStorage, MemoryStorage } from "./memory.ts";
import { openStorage } from "./open.ts";
import { storageSuite } from "./storage_suite.ts";

storageSuite("memory", async () => new MemoryStorage());

describe("memory registry", () => {
  test("two openStorage('memory:x') see the same objects; clearMemoryStorage empties it", async () => {
    const a = await openStorage("memory:registry-x");
    const b = await openStorage("memory:registry-x");
    const other = await openStorage("memory:registry-y");
    await a.put("k", new Uint8Array([5]));
    assert.deepEqual([...(await b.get("k"))], [5]);
    assert.equal(await other.exists("k"), false);
    clearMemoryStorage("registry-x");
    assert.equal(await b.exists("k"), false);
    await other.put("k", new Uint8Array([1]));
    clearMemoryStorage();
    assert.equal(await other.exists("k"), false);
  });

  test("memory:name/prefix is rooted inside the named store", async () => {
    const root = new MemoryStorage("registry-p");
    const inner = await openStorage("memory:registry-p/savepoints/sp-1");
    assert.equal(inner.uri, "memory:registry-p/savepoints/sp-1");
    await inner.put("_manifest.json", new Uint8Array([1]));
    assert.equal(await root.exists("savepoints/sp-1/_manifest.json"), true);
    const listed = [];
    for await (const o of inner.list("")) listed.push(o.path);
    assert.deepEqual(listed, ["_manifest.json"]);
    clearMemoryStorage("registry-p");
  });

  test("anonymous stores are distinct and bad names are refused", async () => {
    const a = new MemoryStorage();
    const b = new MemoryStorage();
    assert.notEqual(a.uri, b.uri);
    await a.put("x", new Uint8Array([1]));
    assert.equal(await b.exists("x"), false);
    assert.equal(await (await openStorage(a.uri)).exists("x"), true, "an anonymous store is reachable by its uri");
    assert.throws(() => new MemoryStorage("a/b"), InvalidUriError);
    assert.throws(() => new MemoryStorage(""), InvalidUriError);
  });
});
