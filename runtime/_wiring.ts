/**
 * Task wiring: one subtask per operator instance, a keyed state backend per keyed subtask, and the
 * channels between them. Private to the runtime (the leading underscore). Kept apart from the job's
 * lifecycle so that where a subtask runs (this thread today) is decided in one place.
 *
 * @module
 */
import { keyGroupRangeFor } from "../format/key_group.ts";
import type { KeyType } from "../format/state_layout.ts";
import { Channel, type ChannelWriter } from "./channel.ts";
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
  /** Where subtasks run (0: the main thread, k: worker k) and which thread this is; absent: all here. */
  readonly threads?: ThreadEnds;
}

/**
 * How the wiring reaches subtasks of other threads. Every thread wires the whole graph in the same order,
 * so a channel has the same id everywhere: the thread of its producer makes the sending end, the thread
 * of its consumer the receiving one, and the main thread relays between two workers.
 */
export interface ThreadEnds {
  /** This thread. */
  readonly here: number;
  /** The thread subtask `index` of `v` runs in. */
  placement(v: Vertex, index: number): number;
  /** A stand-in for a subtask of another thread (the main thread's proxies), or null (workers skip it). */
  proxy(v: Vertex, index: number, thread: number): Task | null;
  /** The sending end of channel `id` to a consumer in `thread`. */
  sender(id: number, capacity: number, thread: number): ChannelWriter;
  /**
   * Channel `id`, read here, is fed by a producer in `thread`; a keyed edge's selector gives the keys
   * back (only the values and key groups cross threads).
   */
  receiver(id: number, channel: Channel, thread: number, keySelector: ((v: unknown) => unknown) | undefined): void;
  /** Channel `id` runs between two other threads. */
  passing(id: number, producer: number, consumer: number): void;
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
  const th = o.threads;
  const here = th?.here ?? 0;
  const where = (v: Vertex, i: number) => (th ? th.placement(v, i) : 0);
  const tasks: Task[] = [];
  const sources: SourceTask[] = [];
  const channels: Channel[] = [];
  const byUid = new Map<string, Task[]>();
  // Per vertex, by subtask: the task (null for a subtask of another thread without a stand-in here).
  const byVertex = new Map<Vertex, (Task | null)[]>();
  for (const v of vertices) {
    const p = v.parallelism!;
    const vtasks: (Task | null)[] = [];
    for (let i = 0; i < p; i++) {
      const thread = where(v, i);
      let t: Task | null;
      if (thread !== here) t = th!.proxy(v, i, thread);
      else {
        t = v.kind === "source" ? new SourceTask(v, i, p, host) : new OperatorTask(v, i, p, host);
        if (v.kind === "keyed") t.keyed = new KeyedStateBackend(keyGroupRangeFor(i, p, maxP), v.inputs[0].keyType as KeyType, trackChanges);
      }
      vtasks.push(t);
      if (t === null) continue;
      tasks.push(t);
      if (t instanceof SourceTask) sources.push(t);
    }
    byVertex.set(v, vtasks);
    byUid.set(v.uid!, vtasks.filter((t): t is Task => t !== null));
  }
  // Channels: per edge, a full mesh for keyed and rebalancing edges, i → i when forwarding at equal parallelism.
  const outSpecs = new Map<Task, OutputSpec[]>();
  const inChannels = new Map<Task, Channel[]>();
  let nextId = 0;
  for (const v of vertices) {
    const consumers = byVertex.get(v)!;
    for (const e of v.inputs) {
      const producers = byVertex.get(e.from)!;
      const forward = !e.keySelector && producers.length === consumers.length;
      for (let i = 0; i < producers.length; i++) {
        const from = where(e.from, i);
        const chans: ChannelWriter[] = [];
        for (let j = 0; j < consumers.length; j++) {
          if (forward && i !== j) continue;
          const id = nextId++;
          const to = where(v, j);
          let writer: ChannelWriter | undefined;
          if (to === here) {
            const ch = new Channel(capacity);
            channels.push(ch);
            const list = inChannels.get(consumers[j]!) ?? [];
            list.push(ch);
            inChannels.set(consumers[j]!, list);
            if (from === here) writer = ch;
            else th!.receiver(id, ch, from, e.keySelector);
          } else if (from === here) writer = th!.sender(id, capacity, to);
          else th!.passing(id, from, to);
          if (writer) chans.push(writer);
        }
        if (from !== here) continue;
        const specs = outSpecs.get(producers[i]!) ?? [];
        specs.push(e.keySelector ? { channels: chans, keySelector: e.keySelector, keyType: e.keyType } : { channels: chans });
        outSpecs.set(producers[i]!, specs);
      }
    }
  }
  for (const t of tasks) {
    if (where(t.vertex, t.index) !== here) continue; // a stand-in: its subtask has its output elsewhere
    t.output = makeOutput(outSpecs.get(t) ?? [], o.batchSize, maxP);
    if (t instanceof OperatorTask) {
      const chans = inChannels.get(t) ?? [];
      if (chans.length === 0) throw new TypeError(`Cannot start job as operator ${JSON.stringify(t.uid)} has no input`);
      t.setInputs(chans);
    }
  }
  return { tasks, sources, channels, byUid };
}
