import { test } from "node:test";
import assert from "node:assert/strict";
import {
  assignKeyGroup,
  defaultMaxParallelism,
  javaHashCode,
  type Key,
  keyGroupRangeFor,
  murmurHash,
  operatorIndexFor,
} from "./key_group.ts";
import { KeyGroupError } from "./errors.ts";

// [key, Java hashCode, key group at maxP 128, at 32768, at 7], computed by running Flink's
// MathUtils.murmurHash algorithm on the JVM's own String/Integer/Long/Double/Boolean/List hashCode
// (javac 17, a throwaway program), so both halves are checked against Java, not against ourselves.
const VECTORS: [Key, number, number, number, number][] = [
  ["", 0, 94, 31198, 0],
  ["a", 97, 81, 19409, 2],
  ["hello", 99162322, 35, 31395, 3],
  ["user-000123", 736447044, 54, 7350, 2],
  ["user-999999", 1002697122, 96, 864, 5],
  ["\u00fc", 252, 41, 18601, 6],
  ["\u65e5\u672c\u8a9e", 25921943, 27, 6683, 2],
  ["\ud83d\ude00", 1772899, 54, 7350, 6],
  ["emoji \ud83d\ude00 key", 773258044, 88, 22104, 6],
  ["\u03a9\u2248\u00e7\u221a\u222b", 1127286361, 86, 25558, 3],
  ["a\u0000b", 93315, 72, 10056, 5],
  ["the quick brown fox jumps over the lazy dog", -2082818701, 56, 2104, 3],
  [0, 0, 94, 31198, 0],
  [1, 1, 86, 16342, 2],
  [-1, -1, 80, 15184, 5],
  [42, 42, 29, 28189, 3],
  [-42, -42, 96, 352, 6],
  [127, 127, 27, 26779, 1],
  [128, 128, 41, 7209, 4],
  [2147483647, 2147483647, 62, 19646, 0],
  [-2147483648, -2147483648, 108, 10348, 3],
  [123456789, 123456789, 81, 22865, 1],
  [-987654321, -987654321, 10, 12554, 4],
  [2147483648, -2147483648, 108, 10348, 3],
  [-2147483649, -2147483648, 108, 10348, 3],
  [9007199254740991, -2097152, 73, 27849, 5],
  [-9007199254740991, -2097151, 13, 30861, 0],
  [1099511627776, 256, 54, 32054, 6],
  [-1099511627769, -249, 41, 16041, 6],
  [1234567890123, 1912276436, 92, 32092, 0],
  [9223372036854775807n, -2147483648, 108, 10348, 3],
  [-9223372036854775808n, -2147483648, 108, 10348, 3],
  [0n, 0, 94, 31198, 0],
  [-1n, 0, 94, 31198, 0],
  [5n, 5, 126, 15230, 4],
  [4611686018427387904n, 1073741824, 84, 11860, 1],
  [0.5, 1071644672, 12, 9100, 6],
  [-1.25, -1074528256, 103, 20071, 3],
  [3.141592653589793, 340593891, 75, 24523, 0],
  [1.0E300, -164130400, 111, 2159, 3],
  [Infinity, 2146435072, 122, 8442, 2],
  [-Infinity, -1048576, 78, 1614, 5],
  [NaN, 2146959360, 41, 12713, 6],
  [true, 1231, 77, 11725, 2],
  [false, 1237, 3, 32003, 4],
  [new Uint8Array([1, 2, 255, 128]), 955075, 65, 6977, 5],
  [["a", 1], 3969, 75, 22731, 3],
  [[["x", 2], 3000000000], -1294821162, 110, 13806, 1],
];

test("javaHashCode() equals Java's hashCode for strings, ints, longs, doubles, booleans, bytes, lists", () => {
  for (const [key, hash] of VECTORS) assert.equal(javaHashCode(key), hash, `hashCode of ${String(key)}`);
});

test("assignKeyGroup() equals Flink's KeyGroupRangeAssignment for every vector", () => {
  for (const [key, , kg128, kg32768, kg7] of VECTORS) {
    assert.equal(assignKeyGroup(key, 128), kg128, `key ${String(key)} @128`);
    assert.equal(assignKeyGroup(key, 32768), kg32768, `key ${String(key)} @32768`);
    assert.equal(assignKeyGroup(key, 7), kg7, `key ${String(key)} @7`);
  }
});

test("murmurHash() is never negative, including for Integer.MIN_VALUE inputs", () => {
  for (const c of [0, 1, -1, 2147483647, -2147483648, 0x12345678, -0x12345678]) assert.ok(murmurHash(c) >= 0);
});

test("javaHashCode() treats -0 like 0 and an int-valued bigint like the same long", () => {
  assert.equal(javaHashCode(-0), 0);
  assert.equal(javaHashCode(3000000000), javaHashCode(3000000000n));
});

test("javaHashCode() rejects bigints outside int64 and unsupported key types with KeyGroupError", () => {
  assert.throws(() => javaHashCode(1n << 64n), KeyGroupError);
  assert.throws(() => javaHashCode({} as unknown as Key), KeyGroupError);
  assert.throws(() => javaHashCode(null as unknown as Key), /null/);
});

test("keyGroupRangeFor() partitions [0, maxParallelism) into contiguous ranges owned by operatorIndexFor()", () => {
  for (const maxP of [1, 7, 128, 129, 1000, 32768]) {
    for (const p of [1, 2, 3, 4, 7, 100].filter((x) => x <= maxP)) {
      let next = 0;
      for (let i = 0; i < p; i++) {
        const r = keyGroupRangeFor(i, p, maxP);
        assert.equal(r.start, next, `p=${p} maxP=${maxP} subtask ${i}`);
        for (const kg of [r.start, r.end]) if (r.end >= r.start) assert.equal(operatorIndexFor(kg, p, maxP), i);
        next = r.end + 1;
      }
      assert.equal(next, maxP);
    }
  }
});

test("keyGroupRangeFor() matches Flink for known ranges", () => {
  assert.deepEqual(keyGroupRangeFor(0, 3, 128), { start: 0, end: 42 });
  assert.deepEqual(keyGroupRangeFor(1, 3, 128), { start: 43, end: 85 });
  assert.deepEqual(keyGroupRangeFor(2, 3, 128), { start: 86, end: 127 });
  assert.equal(operatorIndexFor(127, 4, 128), 3);
  assert.equal(operatorIndexFor(32767, 32768, 32768), 32767);
});

test("defaultMaxParallelism() follows Flink's formula and bounds", () => {
  assert.equal(defaultMaxParallelism(1), 128);
  assert.equal(defaultMaxParallelism(85), 128);
  assert.equal(defaultMaxParallelism(86), 256);
  assert.equal(defaultMaxParallelism(200), 512);
  assert.equal(defaultMaxParallelism(30000), 32768);
});

test("argument validation names the bad value", () => {
  assert.throws(() => assignKeyGroup("a", 0), /maxParallelism.*current value is 0/);
  assert.throws(() => assignKeyGroup("a", 32769), KeyGroupError);
  assert.throws(() => keyGroupRangeFor(0, 129, 128), /parallelism.*current value is 129/);
  assert.throws(() => keyGroupRangeFor(3, 3, 128), /subtask 3/);
  assert.throws(() => operatorIndexFor(128, 1, 128), /key group 128/);
  assert.throws(() => operatorIndexFor(1.5, 1, 128), KeyGroupError);
  assert.throws(() => defaultMaxParallelism(0), KeyGroupError);
});
