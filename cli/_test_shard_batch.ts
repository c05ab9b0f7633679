// Test helper: one OS process that runs several CLI command lines one after another (given as one JSON
// array of argument arrays), as one shard of a batch runner's job would. Exits with the worst exit code.
import process from "node:process";
import { main } from "./main.ts";

const commands = JSON.parse(process.argv[process.argv.length - 1]) as string[][];
let worst = 0;
for (const args of commands) worst = Math.max(worst, await main(args));
process.exit(worst);
