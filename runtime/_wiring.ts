/**
 * Task wiring: one subtask per operator instance, a keyed state backend per keyed subtask, and the
 * channels between them. Private to the runtime (the leading underscore). Kept apart from the job's
 * lifecycle so that where a subtask runs (this thread today) is decided in one place.
 *
 * @module
 */
import { keyGroupRangeFor } from "../format/key_group.ts";
import type { KeyType } from "../format/state_layout.ts";
import { Channel } from "./channel.ts";
import { KeyedStateBackend } from "./keyed_backend.ts";
import type { Vertex } from "./_graph.ts";
import { makeOutput, OperatorTask, type OutputSpec, SourceTask, type Task, type TaskHost } from "./_tasks.ts";

/** How the tasks of a job are laid out. */
export interface WiringOptions {
  readonly maxParallelism: number;
  readonly batchSize: number;
  /** Batches a channel holds before its producer waits. */
  readonly channelCapacity: number;
  /** Keyed backends track changed keys (incremental checkpoints). */
  readonly trackChanges: boolean;
}

/** The wired tasks of a job. */
export interface Wiring {
  /** Every subtask, sources first in vertex order. */
  readonly tasks: Task[];
  readonly sources: SourceTask[];
  readonly channels: Channel[];
  /** The subtasks of each operator uid, by subtask index. */
  readonly byUid: Map<string, Task[]>;
}

/** Creates the subtasks of `vertices` and connects them with channels. */
export function wireTasks(vertices: readonly Vertex[], host: TaskHost, o: WiringOptions): Wiring {
  const maxP = o.maxParallelism;
  const capacity = o.channelCapacity;
  const trackChanges = o.trackChanges;
  const tasks: Task[] = [];
  const sources: SourceTask[] = [];
  const channels: Channel[] = [];
  const byUid = new Map<string, Task[]>();
  const byVertex = new Map<Vertex, Task[]>();
  for (const v of vertices) {
    const p = v.parallelism!;
    const vtasks: Task[] = [];
    for (let i = 0; i < p; i++) {
      const t = v.kind === "source" ? new SourceTask(v, i, p, host) : new OperatorTask(v, i, p, host);
      if (v.kind === "keyed") t.keyed = new KeyedStateBackend(keyGroupRangeFor(i, p, maxP), v.inputs[0].keyType as KeyType, trackChanges);
      vtasks.push(t);
      tasks.push(t);
      if (t instanceof SourceTask) sources.push(t);
    }
    byVertex.set(v, vtasks);
    byUid.set(v.uid!, vtasks);
  }
  // Channels: per edge, a full mesh for keyed and rebalancing edges, i → i when forwarding at equal parallelism.
  const outSpecs = new Map<Task, OutputSpec[]>();
  const inChannels = new Map<Task, Channel[]>();
  for (const v of vertices) {
    const consumers = byVertex.get(v)!;
    for (const e of v.inputs) {
      const producers = byVertex.get(e.from)!;
      const forward = !e.keySelector && producers.length === consumers.length;
      for (let i = 0; i < producers.length; i++) {
        const chans: Channel[] = [];
        for (let j = 0; j < consumers.length; j++) {
          if (forward && i !== j) continue;
          const ch = new Channel(capacity);
          channels.push(ch);
          chans.push(ch);
          const list = inChannels.get(consumers[j]) ?? [];
          list.push(ch);
          inChannels.set(consumers[j], list);
        }
        const specs = outSpecs.get(producers[i]) ?? [];
        specs.push(e.keySelector ? { channels: chans, keySelector: e.keySelector, keyType: e.keyType } : { channels: chans });
        outSpecs.set(producers[i], specs);
      }
    }
  }
  for (const t of tasks) {
    t.output = makeOutput(outSpecs.get(t) ?? [], o.batchSize, maxP);
    if (t instanceof OperatorTask) {
      const chans = inChannels.get(t) ?? [];
      if (chans.length === 0) throw new TypeError(`Cannot start job as operator ${JSON.stringify(t.uid)} has no input`);
      t.setInputs(chans);
    }
  }
  return { tasks, sources, channels, byUid };
}
