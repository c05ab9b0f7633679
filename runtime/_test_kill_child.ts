// The child process of the real-kill test in runtime/crash_test.ts: runs the session job (value, list, map
// and reducing state) over a generated stream with incremental checkpoints in `<dir>/checkpoints` and an
// exactly-once NDJSON sink in `<dir>/output`, restoring from the latest checkpoint if there is one. The
// parent SIGKILLs it at random times after its first committed checkpoint (COMMITTED <id> lines) and starts
// it again until it finishes.
//
//   node --import tsx runtime/_test_kill_child.ts <dir> <events> <parallelism> <events per second> [workers]
//   deno run -A runtime/_test_kill_child.ts <dir> <events> <parallelism> <events per second> [workers]
import process from "node:process";
import { FsStorage } from "../backends/fs.ts";
import { subStorage } from "../backends/sub.ts";
import { ndjsonFileSink } from "./sinks.ts";
import { generatorSource } from "./sources.ts";
import { type Event, reportCommits, sessionJob } from "./_test_util.ts";

const [dir, count, parallelism, rate, workers = "0"] = process.argv.slice(2);
// The records of `events(count, 11)` from _test_util.ts, at `rate` records per second (so kills land mid-stream).
const splits = 4;
const source = generatorSource<Event>({
  count: Number(count),
  splits,
  seed: 11,
  ratePerSecond: Number(rate) / splits,
  make: (i, rng, split) => ({ user: `u${rng.int(40) * splits + split}`, cat: `c${rng.int(5)}`, amount: rng.int(100), seq: i }),
});
const root = new FsStorage(dir);
const job = sessionJob({
  source,
  sink: ndjsonFileSink<string>(root, { prefix: "output" }),
  parallelism: Number(parallelism),
  storage: subStorage(root, "checkpoints"),
  restore: { from: "latest" },
  intervalMs: 20,
  workers: Number(workers),
  onEvent: reportCommits,
});
console.log("STARTED");
const result = await job.run();
console.log(`DONE ${result.status} ${result.records}`);
process.exit(0);
