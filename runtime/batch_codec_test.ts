import assert from "node:assert/strict";
import { test } from "node:test";
import { COLUMNS, decodeBatch, encodeBatch, MSGPACK } from "./_batch_codec.ts";

const kind = (buf: ArrayBuffer) => new Uint8Array(buf)[0];
const roundTrip = (values: unknown[]) => decodeBatch(structuredClone(encodeBatch(values)));

test("records of the same number and string fields go column-wise and come back equal, in field order", () => {
  const rows = Array.from({ length: 600 }, (_, i) => ({ user: `user-${i}`, amount: i * 1.5, name: i % 3 === 0 ? "" : "ü€😀", neg: -i }));
  const buf = encodeBatch(rows);
  assert.equal(kind(buf), COLUMNS);
  const back = decodeBatch(buf) as Record<string, unknown>[];
  assert.deepEqual(back, rows);
  assert.deepEqual(Object.keys(back[7]), ["user", "amount", "name", "neg"]);
});

test("every double survives a number column; bare strings go as one column, bare numbers as msgpack", () => {
  const nums = [0, 1, -1, 2 ** 53, -(2 ** 60), 0.1, Number.MAX_VALUE, Number.MIN_VALUE, Infinity, -Infinity, NaN];
  const rows = nums.map((x) => ({ x }));
  assert.equal(kind(encodeBatch(rows)), COLUMNS);
  assert.deepEqual(roundTrip(rows), rows);
  assert.equal(kind(encodeBatch(nums)), MSGPACK);
  assert.deepEqual(roundTrip(nums), nums);
  const strs = ["", "a", "", "b c", "😀"];
  assert.equal(kind(encodeBatch(strs)), COLUMNS);
  assert.deepEqual(roundTrip(strs), strs);
  assert.deepEqual(roundTrip([""]), [""]);
});

test("anything the columns cannot carry exactly goes as msgpack and comes back as msgpack gives it", () => {
  const cases: unknown[][] = [
    [{ a: 1 }, { a: 1, b: 2 }], // different fields
    [{ a: 1, b: 2 }, { a: "x", b: 2 }], // a field changes type
    [{ a: 1, b: 2 }, { b: 2, a: 1 }], // other field order
    [{ a: 1n }], // bigint
    [{ a: true }], // boolean
    [{ a: null }], // null
    [{ a: { b: 1 } }], // nested
    [{ a: undefined, b: 1 }], // undefined field (dropped, as in JSON)
    [{ a: "x\u0000y" }], // the separator itself
    ["\uD800"], // a lone surrogate
    [new Uint8Array([1, 2])],
    [[1, 2]],
    [1, "a"],
  ];
  for (const values of cases) {
    const buf = encodeBatch(values);
    assert.equal(kind(buf), MSGPACK, JSON.stringify(values, (_k, v) => (typeof v === "bigint" ? `${v}n` : v)));
    const back = decodeBatch(buf);
    assert.equal(back.length, values.length);
  }
  assert.deepEqual(roundTrip([{ a: undefined, b: 1 }]), [{ b: 1 }]);
  assert.deepEqual(roundTrip([{ a: 1n, s: "x\u0000y" }]), [{ a: 1n, s: "x\u0000y" }]);
  assert.deepEqual(roundTrip(["\uD800"]), ["\uD800"]);
});

test("a class instance goes as msgpack (its prototype cannot cross; its own fields do)", () => {
  class P {
    constructor(readonly x: number) {}
  }
  const buf = encodeBatch([new P(1)]);
  assert.equal(kind(buf), MSGPACK);
  assert.deepEqual(decodeBatch(buf), [{ x: 1 }]);
});
