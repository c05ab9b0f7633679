// The counter job with checkpoints on S3, then stop-with-savepoint. Any S3 endpoint works: AWS, MinIO,
// R2, or the s3rver the tests start. Configuration is the AWS SDK's own environment.
//
//   AWS_ENDPOINT_URL_S3=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
//     deno run -A examples/deno_s3.ts s3://bucket/jobs/counter
import { generatorSource, inspect, Job, ndjsonFileSink, validate, valueState } from "../mod.ts";

const root = Deno.args[0] ?? Deno.env.get("ARROWPOINT_EXAMPLE_S3_URI");
if (!root?.startsWith("s3://")) {
  console.error("usage: deno run -A examples/deno_s3.ts s3://bucket/prefix (endpoint and credentials from the AWS_* environment)");
  Deno.exit(2);
}

const COUNT = valueState<number>("count", { value: { encoding: "arrow", type: "int32" } });
let checkpoints = 0;
const job = new Job("counter-s3", {
  maxParallelism: 128,
  checkpoints: { storage: `${root}/checkpoints`, intervalMs: 50 },
  onEvent: (e) => {
    if (e.type === "checkpoint") checkpoints++;
  },
});
job
  .fromSource(generatorSource({ count: 50_000_000, make: (i) => ({ user: `user-${i % 1000}` }) }), { uid: "events" })
  .keyBy((e) => e.user)
  .process<{ user: string; n: number }>({
    open(ctx) {
      ctx.getState(COUNT);
    },
    processElement(e, ctx) {
      const count = ctx.getState(COUNT);
      const n = (count.value() ?? 0) + 1;
      count.update(n);
      if (n % 1000 === 0) ctx.collect({ user: e.user, n });
    },
  }, { uid: "count", parallelism: 2 })
  .sinkTo(ndjsonFileSink(`${root}/out`), { uid: "out" });

await job.start();
while (checkpoints < 3) await new Promise((r) => setTimeout(r, 20));
const savepoint = await job.stopWithSavepoint(`${root}/savepoints/sp-final`);
const result = await job.done;
console.log(`${result.status} after ${result.records} events and ${checkpoints} checkpoints on S3`);
const info = await inspect(savepoint.location);
const findings = await validate(savepoint.location);
if (findings.length) throw new Error(`savepoint has findings: ${JSON.stringify(findings)}`);
const rows = info.operators.flatMap((o) => o.states).reduce((n, s) => n + s.rows, 0);
console.log(`savepoint ${savepoint.location}: valid, ${rows} rows`);
