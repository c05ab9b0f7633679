// The child process of the real-kill test in runtime/event_time_kill_test.ts: runs the event-time job
// (session windows, tumbling windows, bucket timers) over timestamped events with checkpoints every 20 ms
// in `<dir>/checkpoints` and an exactly-once NDJSON sink in `<dir>/output`, restoring from the latest
// checkpoint if there is one. The parent SIGKILLs it at random times after its first committed checkpoint
// (COMMITTED <id> lines) and starts it again until it finishes.
//
//   node --import tsx runtime/_test_kill_child_event_time.ts <dir> <events> <parallelism> <events per second> [workers]
//   deno run -A runtime/_test_kill_child_event_time.ts <dir> <events> <parallelism> <events per second> [workers]
import process from "node:process";
import { FsStorage } from "../backends/fs.ts";
import { subStorage } from "../backends/sub.ts";
import { ndjsonFileSink } from "./sinks.ts";
import { clicks, eventTimeJob } from "./_test_event_time.ts";
import { reportCommits } from "./_test_util.ts";

const [dir, count, parallelism, rate, workers = "0"] = process.argv.slice(2);
const root = new FsStorage(dir);
const job = eventTimeJob({
  source: clicks(Number(count), { seed: 13, ratePerSecond: Number(rate) }),
  sink: ndjsonFileSink<string>(root, { prefix: "output" }),
  parallelism: Number(parallelism),
  storage: subStorage(root, "checkpoints"),
  restore: { from: "latest" },
  maxParallelism: 128,
  intervalMs: 20,
  workers: Number(workers),
  onEvent: reportCommits,
});
console.log("STARTED");
const result = await job.run();
console.log(`DONE ${result.status} ${result.records}`);
process.exit(0);
