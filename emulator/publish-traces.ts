/**
 * Per-message stage times of each PUBLISH, joined across the two invocations that carry it, so a
 * bench can take percentiles of the broker's own work per message (the `/metrics` histogram has only
 * the stages apart, in buckets too coarse for a p50).
 *
 * The join needs no help from the broker: a stored message names its publisher (client id) and its
 * `publishedAt`, taken while the message function handled the frame, so the frame is the one of that
 * client's connection in the message invocation running at that moment (the earliest not yet
 * matched, as one connection's frames are handled in order).
 */

/** One PUBLISH's stages, in ms: its own work is everything but the stream wait. */
export interface PublishTrace {
  readonly publisher: string;
  readonly messageId: string;
  readonly publishedAt: number;
  /** Frame sent to the queue → the message invocation handling it started. */
  readonly frameQueueMs: number;
  /** That invocation, whole (its other frames included, as Lambda bills it). */
  readonly messageHandlerMs: number;
  /** `publishedAt` → the fan-out invocation started: the wait for the stream, reported apart. */
  readonly streamWaitMs: number;
  /** The fan-out invocation, whole (its posts included). */
  readonly fanoutMs: number;
  /** frameQueueMs + messageHandlerMs + fanoutMs. */
  readonly ownMs: number;
}

interface MessageInvocation {
  /** Epoch ms, the clock of `publishedAt`. */
  readonly startedAt: number;
  endedAt?: number;
  durationMs?: number;
  /** PUBLISH frames not yet matched to a stored message, in queue order. */
  readonly frames: Array<{ clientId: string; waitMs: number; publishes: number }>;
}

interface Pending {
  readonly publisher: string;
  readonly messageId: string;
  readonly publishedAt: number;
  readonly frameQueueMs: number;
  readonly handler: MessageInvocation;
  readonly streamWaitMs: number;
  fanoutMs?: number;
}

/** A stored message as the fan-out receives it. */
export interface TracedMessage {
  readonly publisher: string;
  readonly messageId: string;
  readonly publishedAt: number;
}

/**
 * How long an invocation with frames not yet matched is kept (a refused PUBLISH is never stored): a
 * message reaches the fan-out within seconds of its frame.
 */
const invocationWindowMs = 120_000;
/** Traces kept; older ones are dropped first. */
const maxTraces = 100_000;

/**
 * Collects per-message traces from the emulator's timing of the two invocations.
 *
 * @example
 * const done = traces.messageInvocation(Date.now(), [{ clientId: 'dev-1', waitMs: 2, publishes: 1 }]);
 * done(12.5);
 * const finish = traces.fanoutInvocation(Date.now(), [{ publisher: 'dev-1', messageId, publishedAt }]);
 * finish(8.1);
 * traces.read(); // [{ publisher: 'dev-1', frameQueueMs: 2, messageHandlerMs: 12.5, …, ownMs: 22.6 }]
 */
export class PublishTraces {
  private invocations: MessageInvocation[] = [];
  private pending: Pending[] = [];

  /** A message invocation starts with these PUBLISH frames; call the result with its duration when it ends. */
  messageInvocation(
    startedAt: number,
    frames: ReadonlyArray<{ clientId: string; waitMs: number; publishes: number }>,
  ): (durationMs: number) => void {
    const invocation: MessageInvocation = { startedAt, frames: frames.map((f) => ({ ...f })) };
    if (frames.length > 0) {
      this.invocations = this.invocations.filter((i) => i.startedAt > startedAt - invocationWindowMs);
      this.invocations.push(invocation);
    }
    return (durationMs) => {
      invocation.durationMs = durationMs;
      invocation.endedAt = startedAt + durationMs;
    };
  }

  /** A fan-out invocation starts with these stored messages; call the result with its duration when it ends. */
  fanoutInvocation(startedAt: number, messages: readonly TracedMessage[]): (durationMs: number) => void {
    const traced = messages.flatMap((message) => {
      const match = this.frameOf(message);
      if (!match) return [];
      const pending: Pending = {
        ...message,
        frameQueueMs: match.waitMs,
        handler: match.invocation,
        streamWaitMs: Math.max(0, startedAt - message.publishedAt),
      };
      return [pending];
    });
    this.pending.push(...traced);
    if (this.pending.length > maxTraces) this.pending.splice(0, this.pending.length - maxTraces);
    return (durationMs) => {
      for (const pending of traced) pending.fanoutMs = durationMs;
    };
  }

  /** The traces complete so far (both invocations ended), oldest first; `since` keeps those published at or after it. */
  read(since = 0): PublishTrace[] {
    return this.pending.flatMap((p) => {
      const handlerMs = p.handler.durationMs;
      if (p.fanoutMs === undefined || handlerMs === undefined || p.publishedAt < since) return [];
      return [
        {
          publisher: p.publisher,
          messageId: p.messageId,
          publishedAt: p.publishedAt,
          frameQueueMs: p.frameQueueMs,
          messageHandlerMs: handlerMs,
          streamWaitMs: p.streamWaitMs,
          fanoutMs: p.fanoutMs,
          ownMs: p.frameQueueMs + handlerMs + p.fanoutMs,
        },
      ];
    });
  }

  /** Forgets everything collected so far. */
  reset(): void {
    this.invocations = [];
    this.pending = [];
  }

  /** The frame a stored message came from, taken off its invocation's unmatched frames. */
  private frameOf(message: TracedMessage): { waitMs: number; invocation: MessageInvocation } | undefined {
    // Date.now() has whole milliseconds and the invocation's end is start + a fractional duration.
    const during = (i: MessageInvocation) =>
      i.startedAt <= message.publishedAt &&
      message.publishedAt <= (i.endedAt ?? Number.POSITIVE_INFINITY) + 1;
    for (const invocation of this.invocations) {
      if (!during(invocation)) continue;
      const frame = invocation.frames.find((f) => f.clientId === message.publisher && f.publishes > 0);
      if (!frame) continue;
      frame.publishes--;
      // Fully matched invocations leave the list, so it holds only what may still be matched.
      if (invocation.frames.every((f) => f.publishes === 0))
        this.invocations = this.invocations.filter((i) => i !== invocation);
      return { waitMs: frame.waitMs, invocation };
    }
    return undefined;
  }
}
