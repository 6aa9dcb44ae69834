/**
 * The broker's own figures under `$SYS/broker/…`, with Mosquitto's topic names, published as
 * retained messages (docs/adr/0022-enhanced-authentication-and-sys-topics.md). Cheap by
 * construction: the fan-out adds its traffic once per stream batch, and the sweep, which already
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

/**
 * Adds one stream batch's traffic to the running counts: one write per batch, none when the batch
 * carried only the broker's own `$SYS/` messages and sent nothing. A retried batch counts again
 * (the counts are at least what happened).
 *
 * @example
 * await countTraffic(ctx, [{ sent: 2, queued: 0, dropped: 0, gone: 0 }], 1);
 */
export async function countTraffic(
  ctx: BrokerContext,
  results: readonly FanOutResult[],
  clientMessages: number,
): Promise<void> {
  const messagesSent = results.reduce((sum, result) => sum + result.sent, 0);
  await ctx.store.addBrokerCounters({ messagesReceived: clientMessages, messagesSent });
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
