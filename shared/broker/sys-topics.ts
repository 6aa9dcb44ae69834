/**
 * The broker's own figures under `$SYS/broker/…`, with Mosquitto's topic names, published as
 * retained messages (docs/adr/0022-enhanced-authentication-and-sys-topics.md). Cheap by
 * construction: each fan-out instance adds its traffic at most once a minute, and the sweep, which already
 * reads every connection record, publishes what changed once a minute.
 */
import type { BrokerFigures, RetainedMessage } from '../ports.js';
import type { BrokerContext } from './context.js';
import type { FanOutResult } from './fanout.js';
import { acceptMessage } from './publishing.js';

/** The product and version `$SYS/broker/version` names. */
export const brokerVersion = 'Nimbus MQTT 0.1.0';

/** The publisher the broker's own messages are stored under (the stream's ordering key). */
export const sysPublisher = '$SYS';

/** Everything the figures are published from: what the store keeps and what the sweep counted. */
export interface SysFigures extends BrokerFigures {
  /** Connection records the sweep found alive (CONNECT done, not closed or stale). */
  readonly clientsConnected: number;
}

/**
 * The `$SYS/` topics and their payloads (decimal text, as Mosquitto publishes them). Pure.
 *
 * @example
 * sysMessages({ clientsConnected: 3, … })['$SYS/broker/clients/connected']; // '3'
 */
export function sysMessages(figures: SysFigures): Record<string, string> {
  const received = String(figures.messagesReceived);
  const sent = String(figures.messagesSent);
  return {
    '$SYS/broker/version': brokerVersion,
    '$SYS/broker/clients/connected': String(figures.clientsConnected),
    // This broker counts application messages, not control packets: the two Mosquitto names agree.
    '$SYS/broker/messages/received': received,
    '$SYS/broker/messages/sent': sent,
    '$SYS/broker/publish/messages/received': received,
    '$SYS/broker/publish/messages/sent': sent,
    '$SYS/broker/subscriptions/count': String(figures.subscriptions),
    '$SYS/broker/retained messages/count': String(figures.retainedMessages),
  };
}

/** The variable naming how often a fan-out instance adds its traffic to the `$SYS/` counts, in ms. */
export const sysCountIntervalEnv = 'NIMBUS_SYS_COUNT_INTERVAL_MS';
/** The sweep publishes the figures once a minute: counting more often would only add writes. */
export const defaultSysCountInterval = 60_000;

/**
 * One fan-out instance's traffic not yet added to the `$SYS/` counts: stream batches are tallied
 * in memory and added with one write at most once per interval, so the counts cost nothing per
 * message or per batch. A retried batch counts again (the counts are at least what happened); the
 * tally of an instance that Lambda reclaims before its next write is lost (at most one interval of
 * its traffic), which the figures, informational, accept.
 *
 * @example
 * const tally = new TrafficTally(60_000);
 * tally.add(result, 3);
 * await tally.flushIfDue(ctx); // one UpdateItem once a minute has passed since the last
 */
export class TrafficTally {
  private received = 0;
  private sent = 0;
  /** When the tally was last written: an instance's first batch writes at once. */
  private since = Number.NEGATIVE_INFINITY;

  /** `intervalMs` Infinity: nothing is counted (no sweep publishes the figures). */
  constructor(private readonly intervalMs: number) {}

  /** Counts a fanned-out batch: its messages from clients (not the broker's own) and what was sent. */
  add(result: FanOutResult, clientMessages: number): void {
    this.received += clientMessages;
    this.sent += result.sent;
  }

  /**
   * Adds the tally to the store when the interval has passed since the last write. Called after each
   * batch; what the last batches of a quiet spell counted waits for this instance's next batch (the
   * sweep's own `$SYS/` messages are batches too, while anyone subscribes to them).
   */
  async flushIfDue(ctx: BrokerContext): Promise<void> {
    const now = ctx.now();
    if (!Number.isFinite(this.intervalMs)) return;
    if (now - this.since < this.intervalMs || (this.received === 0 && this.sent === 0)) return;
    const delta = { messagesReceived: this.received, messagesSent: this.sent };
    this.received = 0;
    this.sent = 0;
    this.since = now;
    try {
      await ctx.store.addBrokerCounters(delta);
    } catch (error) {
      // Kept for the next write: nothing counted is dropped by a failed one.
      this.received += delta.messagesReceived;
      this.sent += delta.messagesSent;
      throw error;
    }
  }
}

/** Whether a fanned-out message counts as received from a client (the broker's own do not). */
export function isClientMessage(message: { readonly publisher: string; readonly topic: string }): boolean {
  return !(message.publisher === sysPublisher && message.topic.startsWith('$SYS/'));
}

/**
 * Publishes the `$SYS/` figures that changed since last time, retained and through the stream so
 * subscribers see them live. What was published last is read back from the retained store (one
 * partition, `$SYS`), so nothing else is kept. Returns how many topics were published.
 *
 * @example
 * const { scanned, closed, stale } = await sweep(ctx);
 * await publishBrokerFigures(ctx, scanned - closed - stale);
 */
export async function publishBrokerFigures(ctx: BrokerContext, clientsConnected: number): Promise<number> {
  const [figures, previous] = await Promise.all([
    ctx.store.brokerFigures(),
    ctx.store.retainedMatching('$SYS/broker/#'),
  ]);
  const last = new Map(
    previous.map((m: RetainedMessage) => [m.topic, Buffer.from(m.payload).toString('utf8')]),
  );
  const changed = Object.entries(sysMessages({ ...figures, clientsConnected })).filter(
    ([topic, value]) => last.get(topic) !== value,
  );
  for (const [topic, value] of changed) {
    await acceptMessage(ctx, sysPublisher, {
      topic,
      payload: Buffer.from(value, 'utf8'),
      qos: 0,
      retain: true,
    });
  }
  return changed.length;
}
