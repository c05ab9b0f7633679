/**
 * The job graph the builder API records: vertices (sources, operators, sinks) and their input edges.
 * Private to the runtime (the leading underscore).
 *
 * @module
 */
import type { Key } from "../format/key_group.ts";
import type { KeyType } from "../format/state_layout.ts";
import type { Sink } from "./sinks.ts";
import type { Source } from "./sources.ts";
import type { KeyedProcessFunction, ProcessFunction } from "./stream.ts";
import type { WatermarkStrategy } from "./watermark.ts";

/**
 * A function object, or a factory called once per subtask to make a fresh one (for functions that keep
 * per-subtask fields).
 *
 * @example
 * ```ts
 * import type { FunctionOrFactory } from "./_graph.ts";
 * const f: FunctionOrFactory<{ n: number }> = () => ({ n: 0 });
 * ```
 */
export type FunctionOrFactory<F> = F | (() => F);

/** An input of a vertex. */
export interface InputEdge {
  readonly from: Vertex;
  readonly keySelector?: (value: unknown) => Key;
  readonly keyType?: KeyType;
}

/** A node of the job graph. */
export interface Vertex {
  readonly id: number;
  readonly kind: "source" | "keyed" | "operator" | "sink";
  uid?: string;
  name: string;
  parallelism?: number;
  /** Whether the operator needs a uid (holds or may hold state). */
  readonly stateful: boolean;
  readonly inputs: InputEdge[];
  readonly source?: Source<unknown>;
  /** How a source assigns event time and watermarks (none: the source emits no watermarks). */
  watermarks?: WatermarkStrategy<unknown>;
  readonly keyedFn?: FunctionOrFactory<KeyedProcessFunction<unknown, unknown, unknown>>;
  readonly fn?: FunctionOrFactory<ProcessFunction<unknown, unknown>>;
  readonly sink?: Sink<unknown, unknown>;
}

/** The graph a job builds. */
export class Graph {
  readonly vertices: Vertex[] = [];
  frozen = false;

  add(v: Omit<Vertex, "id">): Vertex {
    if (this.frozen) throw new TypeError("Cannot add an operator as the job was already started");
    const vertex: Vertex = { ...v, id: this.vertices.length };
    this.vertices.push(vertex);
    return vertex;
  }
}

