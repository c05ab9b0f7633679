import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PathEscapeError } from "../format/errors.ts";
import { comparePaths, isValidPath, joinPath, validatePath, validatePrefix } from "./path.ts";

describe("paths", () => {
  test("validatePath accepts relative '/'-separated paths only", () => {
    for (const ok of ["a", "a/b", "chk-000042/_manifest.json", ".hidden", "a/..b", "a/b./c", "ünï/文件", "a b/c"]) {
      assert.doesNotThrow(() => validatePath(ok), ok);
      assert.equal(isValidPath(ok), true, ok);
    }
    for (const bad of ["", "/a", "a/", "a//b", ".", "..", "../a", "a/..", "a/./b", "a\\b", "\\a", "a\0b", "//a"]) {
      assert.throws(() => validatePath(bad), PathEscapeError, JSON.stringify(bad));
      assert.equal(isValidPath(bad), false, JSON.stringify(bad));
    }
  });

  test("validatePrefix allows a partial last segment", () => {
    for (const ok of ["", "chk-", "chk-1/", "a/b", "a/.", "a/..x", "."]) assert.doesNotThrow(() => validatePrefix(ok), ok);
    for (const bad of ["/", "/a", "../", "./", "a//", "a//b", "a/../b", "a\\", "a\0"]) {
      assert.throws(() => validatePrefix(bad), PathEscapeError, JSON.stringify(bad));
    }
  });

  test("joinPath joins and validates", () => {
    assert.equal(joinPath("savepoints/sp-1", "_manifest.json"), "savepoints/sp-1/_manifest.json");
    assert.equal(joinPath("", "a", ""), "a");
    assert.throws(() => joinPath("a", "../b"), PathEscapeError);
  });

  test("comparePaths orders by code point (UTF-8 byte order), unlike plain string comparison", () => {
    const astral = "\u{1F600}";
    const high = "\uFFFF";
    assert.ok(astral < high, "JS compares UTF-16 code units");
    assert.ok(comparePaths(high, astral) < 0, "code point order puts U+FFFF first");
    assert.deepEqual(["b", "a/b", "a-b", "A", "a", "é"].sort(comparePaths), ["A", "a", "a-b", "a/b", "b", "é"]);
    assert.equal(comparePaths("x", "x"), 0);
    const encoder = new TextEncoder();
    const words = ["z", "é", high, astral, "\uE000", "a/b", "ab", "\uD7FF"];
    const byBytes = [...words].sort((x, y) => Buffer.compare(encoder.encode(x), encoder.encode(y)));
    assert.deepEqual([...words].sort(comparePaths), byBytes);
  });
});
