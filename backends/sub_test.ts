import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PathEscapeError } from "../format/errors.ts";
import { MemoryStorage } from "./memory.ts";
import { openStorage } from "./open.ts";
import { storageSuite } from "./storage_suite.ts";
import { subStorage } from "./sub.ts";

// The whole suite through a sub-storage view (two levels deep), over memory.
storageSuite("subStorage over memory", async () => subStorage(subStorage(new MemoryStorage(), "outer"), "savepoints/sp-1"));

describe("subStorage", () => {
  test("paths are relative to the sub-folder and the uri is the joined one", async () => {
    const root = new MemoryStorage();
    const sp = subStorage(root, "savepoints/sp-7/");
    assert.equal(sp.uri, `${root.uri}/savepoints/sp-7`);
    await sp.put("op/state/kg-0-127.arrow", new Uint8Array([1]));
    await root.put("savepoints/sp-70/x", new Uint8Array([2]));
    assert.equal(await root.exists("savepoints/sp-7/op/state/kg-0-127.arrow"), true);
    const listed = [];
    for await (const o of sp.list("")) listed.push(o.path);
    assert.deepEqual(listed, ["op/state/kg-0-127.arrow"], "a sibling with a longer name is not included");
    const viaUri = await openStorage(sp.uri);
    assert.equal(await viaUri.exists("op/state/kg-0-127.arrow"), true, "opening the sub uri gives the same objects");
    const nested = subStorage(sp, "op");
    assert.equal(nested.uri, `${root.uri}/savepoints/sp-7/op`);
    assert.equal(await nested.exists("state/kg-0-127.arrow"), true);
  });

  test("bad prefixes are refused; closing a view leaves the parent open", async () => {
    const root = new MemoryStorage();
    for (const bad of ["", "../x", "/abs", "a//b", "a/./b"]) assert.throws(() => subStorage(root, bad), PathEscapeError, bad);
    const view = subStorage(root, "v");
    await view.close();
    await root.put("still-open", new Uint8Array([1]));
    assert.equal(await root.exists("still-open"), true);
  });
});
