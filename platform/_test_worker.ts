// A worker for worker_test.ts: echoes, hands buffers back, and fails on request.
import { parentLink } from "./worker.ts";

const parent = parentLink();
parent.onMessage((m) => {
  const msg = m as { echo?: unknown; buffer?: ArrayBuffer; fail?: string };
  if (msg.fail !== undefined) throw new Error(msg.fail);
  if (msg.buffer) {
    const bytes = new Uint8Array(msg.buffer);
    for (let i = 0; i < bytes.length; i++) bytes[i] += 1;
    parent.post({ buffer: msg.buffer }, [msg.buffer]);
    return;
  }
  parent.post(msg);
});
