// Map, list and namespaced state through the tools: row identity is (key, namespace, user key).
import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import type { Storage } from "../backends/storage.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import { assignKeyGroup } from "../format/key_group.ts";
import type { ChunkRef, StateSnapshot } from "../format/manifest.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { commitManifest, writeChunk } from "../snapshot/write.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { compact } from "./compact.ts";
import { diff } from "./diff.ts";
import { exportState } from "./export.ts";
import { migrate } from "./migrate.ts";
import { addField, custom, defineMigrations, widenType } from "./migrations.ts";
import { rekey } from "./rekey.ts";
import { validate } from "./validate.ts";

const MAP: StateLayout = { kind: "map", keyType: "string", userKeyType: "int32", value: { encoding: "msgpack" } };
const LIST: StateLayout = { kind: "list", keyType: "string", namespaced: true, value: { encoding: "arrow", type: { struct: [{ name: "t", type: "int32" }] } } };

interface Row {
  k: string;
  ns?: string;
  u?: number;
  v: unknown;
  del?: boolean;
}

function rows(layout: StateLayout, list: Row[], delta: boolean) {
  const sorted = list.map((r) => ({ ...r, kg: assignKeyGroup(r.k, 128) })).sort((a, b) => a.kg - b.kg);
  return {
    length: sorted.length,
    keyGroups: sorted.map((r) => r.kg),
    keys: sorted.map((r) => r.k),
    ...(layout.namespaced ? { namespaces: sorted.map((r) => r.ns ?? "") } : {}),
    ...(layout.kind === "map" ? { userKeys: sorted.map((r) => r.u ?? 0) } : {}),
    values: sorted.map((r) => (r.del ? null : r.v)),
    ...(delta ? { ops: Uint8Array.from(sorted.map((r) => (r.del ? 1 : 0))) } : {}),
  };
}

/** A two-checkpoint chain of a map state and a namespaced list state (one chunk each over all key groups). */
async function writeKinds(root: Storage): Promise<void> {
  const base: Row[][] = [[], []];
  for (let i = 0; i < 60; i++) {
    base[0].push({ k: `u${i % 20}`, u: i, v: { n: i } });
    base[1].push({ k: `u${i % 20}`, ns: `w${i % 3}`, v: [{ t: i }, { t: i + 1 }] });
  }
  const delta: Row[][] = [
    [{ k: "u1", u: 1, v: null, del: true }, { k: "u1", u: 21, v: { n: -21 } }, { k: "u99", u: 7, v: { n: 7 } }],
    [{ k: "u2", ns: "w2", v: null, del: true }, { k: "u3", ns: "w0", v: [] }],
  ];
  const layouts = [MAP, LIST];
  const chunks: ChunkRef[][] = [[], []];
  for (let id = 1; id <= 2; id++) {
    for (let s = 0; s < 2; s++) {
      const chunk = encodeChunk(layouts[s], rows(layouts[s], id === 1 ? base[s] : delta[s], id === 2));
      const ref = await writeChunk(root, `shared/${id}-${s}.arrow`, chunk, { type: id === 1 ? "base" : "delta", order: id });
      ref.keyGroupRange = { start: 0, end: 127 };
      chunks[s].push(ref);
    }
    const states: StateSnapshot[] = [
      { name: "prefs", keyed: true, schemaVersion: 1, ...MAP, chunks: [...chunks[0]] },
      { name: "windows", keyed: true, schemaVersion: 1, ...LIST, chunks: [...chunks[1]] },
    ];
    await commitManifest(root, `chk-00000${id}`, {
      format: "arrowpoint", formatVersion: 1, kind: "checkpoint", id: `chk-00000${id}`, checkpointId: id, createdAt: new Date(0).toISOString(),
      writer: { name: "test", version: "0" }, job: "kinds", maxParallelism: 128, hash: "flink-murmur-java-hashcode", chunkRoot: "..",
      operators: [{ uid: "op", parallelism: 2, states }],
    });
  }
}

function ids(r: Awaited<ReturnType<typeof readState>>): Map<string, unknown> {
  return new Map(r.keys!.map((k, i) => [`${k}|${r.namespaces?.[i] ?? ""}|${r.userKeys?.[i] ?? ""}`, r.values[i]]));
}

test("map and namespaced list state survive compact, rekey and a 3-step migration v1 → v4", async () => {
  clearMemoryStorage("kinds");
  const root = await openStorage("memory:kinds");
  await writeKinds(root);
  const live = await openSnapshot("memory:kinds");
  const prefs = ids(await readState(live, "op", "prefs"));
  const windows = ids(await readState(live, "op", "windows"));
  assert.equal(prefs.has("u1||1"), false);
  assert.deepEqual(prefs.get("u1||21"), { n: -21 });
  assert.equal(windows.has("u2|w2|"), false);

  await compact("memory:kinds", "memory:kinds/sp");
  const sp = await openSnapshot("memory:kinds/sp");
  assert.deepEqual(ids(await readState(sp, "op", "prefs")), prefs);
  assert.deepEqual(ids(await readState(sp, "op", "windows")), windows);
  assert.deepEqual(await validate("memory:kinds/sp"), []);

  await rekey("memory:kinds/sp", "memory:kinds/sp-m64", { maxParallelism: 64, parallelism: 3 });
  const m64 = await openSnapshot("memory:kinds/sp-m64");
  assert.deepEqual(ids(await readState(m64, "op", "prefs")), prefs);
  assert.deepEqual(ids(await readState(m64, "op", "windows")), windows);
  assert.deepEqual(await validate("memory:kinds/sp-m64"), []);

  // Field steps apply to each element of a list; custom gets the whole list.
  const m = defineMigrations({
    "op/windows": [
      addField("w", "float32", 0.5), // v1 → v2
      widenType("t", "int64"), // v2 → v3
      custom((v) => (v as { t: bigint }[]).filter((e) => e.t % 2n === 0n), { description: "keep even t" }), // v3 → v4
    ],
  });
  await migrate("memory:kinds/sp", "memory:kinds/sp-v4", m);
  const v4 = await openSnapshot("memory:kinds/sp-v4");
  const expected = new Map([...windows].map(([k, v]) => [k, (v as { t: number }[]).filter((e) => e.t % 2 === 0).map((e) => ({ t: BigInt(e.t), w: 0.5 }))]));
  assert.deepEqual(ids(await readState(v4, "op", "windows")), expected);
  assert.equal(v4.manifest.operators[0].states.find((s) => s.name === "windows")!.schemaVersion, 4);
  assert.deepEqual(ids(await readState(v4, "op", "prefs")), prefs, "the map state is copied unchanged");

  const d = await diff("memory:kinds/sp", "memory:kinds/sp-v4");
  const w = d.states.find((s) => s.state === "windows")!;
  assert.equal(w.changed + w.unchanged, windows.size);
  assert.ok(w.schema!.details.some((x) => x.startsWith("schemaVersion 1 → 4")));
  assert.equal(d.states.find((s) => s.state === "prefs")!.status, "same");

  let text = "";
  for await (const b of exportState("memory:kinds/sp", { operator: "op", state: "prefs" })) text += new TextDecoder().decode(b);
  const lines = text.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, prefs.size);
  assert.deepEqual(lines.find((l) => l.key === "u1" && l.userKey === 21), { key: "u1", keyGroup: assignKeyGroup("u1", 128), userKey: 21, value: { n: -21 } });
  text = "";
  for await (const b of exportState("memory:kinds/sp", { operator: "op", state: "windows" })) text += new TextDecoder().decode(b);
  assert.ok(text.split("\n").some((l) => l.includes('"namespace":"w0"')));
});

test("operator state: split, union and broadcast lists through rekey and migrate", async () => {
  clearMemoryStorage("opstate");
  const storage = await openStorage("memory:opstate/sp");
  const layout: StateLayout = { kind: "operator-list", value: { encoding: "msgpack" } };
  const lists: Record<string, unknown[][]> = { split: [["a", "b"], ["c"]], union: [["u1"], ["u2", "u3"]], broadcast: [["x", "y"], ["x", "y"]] };
  const states: StateSnapshot[] = [];
  for (const [mode, perSubtask] of Object.entries(lists)) {
    const chunks: ChunkRef[] = [];
    for (let i = 0; i < perSubtask.length; i++) {
      chunks.push(await writeChunk(storage, `src/${mode}/subtask-${i}.arrow`, encodeChunk(layout, { length: perSubtask[i].length, values: perSubtask[i] }), { type: "base", order: 0, subtask: i }));
    }
    states.push({ name: mode, keyed: false, schemaVersion: 1, redistribution: mode as "split" | "union" | "broadcast", ...layout, chunks });
  }
  await commitManifest(storage, "", {
    format: "arrowpoint", formatVersion: 1, kind: "savepoint", id: "sp", createdAt: new Date(0).toISOString(), writer: { name: "t", version: "0" },
    job: "j", maxParallelism: 128, hash: "flink-murmur-java-hashcode", chunkRoot: ".", operators: [{ uid: "src", parallelism: 2, states }],
  });
  const perSubtask = async (uri: string, name: string) => {
    const snap = await openSnapshot(uri);
    const r = await readState(snap, "src", name);
    const out: unknown[][] = Array.from({ length: snap.manifest.operators[0].parallelism }, () => []);
    for (let i = 0; i < r.length; i++) out[r.subtasks![i]].push(r.values[i]);
    return out;
  };
  await rekey("memory:opstate/sp", "memory:opstate/p3", { parallelism: 3 });
  assert.deepEqual(await perSubtask("memory:opstate/p3", "split"), [["a"], ["b"], ["c"]]);
  assert.deepEqual((await perSubtask("memory:opstate/p3", "union")).flat().sort(), ["u1", "u2", "u3"], "union items stored once");
  assert.deepEqual(await perSubtask("memory:opstate/p3", "broadcast"), [["x", "y"], ["x", "y"], ["x", "y"]]);
  // A migration at the same parallelism keeps every subtask's own list.
  await migrate("memory:opstate/sp", "memory:opstate/v2", defineMigrations({ "src/broadcast": [custom((v) => `${v}!`)], "src/union": [custom((v) => (v === "u2" ? undefined : v))] }));
  assert.deepEqual(await perSubtask("memory:opstate/v2", "broadcast"), [["x!", "y!"], ["x!", "y!"]]);
  assert.deepEqual(await perSubtask("memory:opstate/v2", "union"), [["u1"], ["u3"]]);
  assert.deepEqual(await perSubtask("memory:opstate/v2", "split"), lists.split);
});
