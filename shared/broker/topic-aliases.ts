/**
 * MQTT 5 Topic Aliases (5.0 §3.3.2.3.4), both ways, for one network connection whose packets
 * many stateless instances handle (docs/adr/0019-topic-aliases.md).
 *
 * Client → broker: the mapping lives on the connection's record, which every frame reads anyway;
 * a PUBLISH that sets or changes a mapping writes it, an alias-only PUBLISH costs nothing more.
 * The alias is resolved before anything else looks at the PUBLISH: authorization, topic checks,
 * the retained store and the fan-out see the topic name only.
 *
 * Broker → client: concurrent fan-outs post to one connection in no order, so an alias goes out
 * alone only once a post carrying topic and alias has returned (it is then "confirmed"); until
 * then every PUBLISH on the topic carries both, which sets the same mapping again. An alias never
 * changes its topic on a connection; when they run out, topics go out in full.
 */
import mqttPacket, { type IPublishPacket } from 'mqtt-packet';
import type { ConnectionRecord, OutboundTopicAliases, SessionRecord } from '../ports.js';
import { isValidTopicName } from '../topics.js';
import type { BrokerContext, Invocation } from './context.js';
import type { PacketSink } from './delivery.js';
import { protocolViolation } from './handlers/violation.js';
import { largestPacketFor } from './outbox.js';
import { ReasonCode } from './reason-codes.js';

/**
 * Topics this short go out in full: an alias costs 3 bytes of property and may lengthen two
 * length fields, so it saves nothing on fewer than 6 bytes of topic.
 */
const shortestAliasedTopicBytes = 6;

/**
 * The PUBLISH with its Topic Alias resolved: the topic name filled in from the connection's
 * mapping (or the mapping set from it [MQTT-3.3.2-12]), the alias removed. Undefined when the
 * connection was told off: an empty topic with no alias or with an alias the client never set
 * is a Protocol Error. Aliases 0 and above the maximum were refused before (`packetFault`).
 * Writes the connection's mapping when the PUBLISH sets or changes it.
 *
 * @example
 * const resolved = await resolveTopicAlias(ctx, invocation, record, packet);
 * if (!resolved) return; // the connection is closing
 */
export async function resolveTopicAlias(
  ctx: BrokerContext,
  invocation: Invocation,
  record: ConnectionRecord,
  packet: IPublishPacket,
): Promise<IPublishPacket | undefined> {
  if (record.protocolVersion !== 5) return packet;
  const { topicAlias: alias, ...properties } = packet.properties ?? {};
  if (alias === undefined) {
    if (packet.topic !== '') return packet;
    // 5.0 §3.3.2.3.4: a zero-length Topic Name without a Topic Alias is a Protocol Error.
    protocolViolation(
      invocation,
      5,
      ReasonCode.ProtocolError,
      'PUBLISH with an empty topic and no Topic Alias',
    );
    return undefined;
  }
  const resolved = { ...packet, properties };
  const known = record.inboundTopicAliases?.[alias];
  if (packet.topic === '') {
    if (known !== undefined) return { ...resolved, topic: known };
    protocolViolation(
      invocation,
      5,
      ReasonCode.ProtocolError,
      `Topic Alias ${alias} was not set on this connection: send the topic name with it first`,
    );
    return undefined;
  }
  // Topic and alias: (re)map it, stored with the connection so it ends with it [MQTT-3.3.2-7]. An
  // invalid topic name is not kept: the handler closes the connection for it.
  if (known !== packet.topic && isValidTopicName(packet.topic)) {
    const aliases = { ...record.inboundTopicAliases, [alias]: packet.topic };
    await ctx.store.setInboundTopicAliases(record.connectionId, aliases);
    // The frame's next packets see it (they are handled with `invocation.record`).
    invocation.record = { ...record, inboundTopicAliases: aliases };
  }
  return resolved;
}

/** How many aliases the broker may use sending to the session's connection: 0 for none. */
function outboundAliasLimit(ctx: BrokerContext, session: SessionRecord): number {
  if (session.protocolVersion !== 5 || session.connectionId === undefined) return 0;
  // [MQTT-3.1.2-26] never above the client's maximum; [MQTT-3.1.2-27] none when it set none.
  return Math.min(session.topicAliasMaximum ?? 0, ctx.limits.topicAliasMaximum);
}

/** The encoded size of an MQTT 5 PUBLISH. */
function encodedSize(packet: IPublishPacket): number {
  return mqttPacket.generate(packet, { protocolVersion: 5 }).length;
}

/**
 * A sink that sends each PUBLISH to the session's connection with a Topic Alias where it may:
 * the alias alone once confirmed, else topic and alias, assigning the next free alias when the
 * topic has none and the client allows more; the full topic when aliases ran out, another
 * delivery is assigning at the same moment, or the topic is too short to gain. `session` is the
 * fan-out's read of the session: a stale read only means fewer aliases, never a wrong one.
 *
 * Only a post that returned makes an alias safe to send alone from another fan-out. By default
 * each `send` is a post, confirmed when it returns `sent`. With `confirmAfterPost`, `send` only
 * collects packets that the caller posts in order afterwards, then calls `posted()`: the aliases
 * the collection set are confirmed then, while later packets of the same collection may already
 * carry an alias alone, as they follow the one that set it on the same connection.
 *
 * @example
 * const aliases = withTopicAliases(ctx, session, post);
 * const outcome = await deliver(ctx, session, message, qos, options, aliases.sink);
 */
export function withTopicAliases(
  ctx: BrokerContext,
  session: SessionRecord,
  send: PacketSink,
  options: { readonly confirmAfterPost?: boolean } = {},
): TopicAliasSink {
  const limit = outboundAliasLimit(ctx, session);
  const connectionId = session.connectionId;
  if (limit === 0 || connectionId === undefined)
    return { sink: send, posted: async () => {}, aliases: () => session.outboundTopicAliases };
  // Only this connection's aliases count: a resumed session's earlier connection set none here [MQTT-3.3.2-7].
  const assigned =
    session.outboundTopicAliases?.connectionId === connectionId ? session.outboundTopicAliases.aliases : {};
  const byTopic = new Map(
    Object.entries(assigned).map(([alias, entry]) => [entry.topic, { ...entry, alias: Number(alias) }]),
  );
  let nextAlias = Object.keys(assigned).length + 1;
  const pending: Array<{ topic: string; alias: number }> = [];
  // Failing to confirm costs bytes, not correctness, and the message is out: not worth a retry of the fan-out.
  const confirm = ({ topic, alias }: { topic: string; alias: number }) =>
    ctx.store.confirmTopicAlias(session.clientId, connectionId, topic, alias).catch(() => undefined);
  const sink: PacketSink = async (packet) => {
    const topic = packet.topic;
    if (Buffer.byteLength(topic) < shortestAliasedTopicBytes) return send(packet);
    const known = byTopic.get(topic);
    if (known?.confirmed) return send(aliased(packet, known.alias, ''));
    const alias = known?.alias ?? nextAlias;
    if (alias > limit) return send(packet); // [MQTT-3.3.2-11] the aliases ran out
    const withBoth = aliased(packet, alias, topic);
    // The alias property makes the packet longer: not past what the client takes [MQTT-3.1.2-24].
    if (encodedSize(withBoth) > largestPacketFor(session.maximumPacketSize)) return send(packet);
    if (!known) {
      if (!(await ctx.store.assignTopicAlias(session.clientId, connectionId, topic, alias)))
        return send(packet);
      nextAlias++;
      byTopic.set(topic, { topic, alias, confirmed: false });
    }
    const result = await send(withBoth);
    if (result !== 'sent') return result;
    if (options.confirmAfterPost) pending.push({ topic, alias });
    else await confirm({ topic, alias });
    // What follows on this sink follows this packet on the connection.
    byTopic.set(topic, { topic, alias, confirmed: true });
    return result;
  };
  const posted = async () => {
    await Promise.all(pending.splice(0).map(confirm));
  };
  const aliases = (): OutboundTopicAliases => ({
    connectionId,
    aliases: Object.fromEntries(
      [...byTopic.values()].map(({ topic, alias, confirmed }) => [String(alias), { topic, confirmed }]),
    ),
  });
  return { sink, posted, aliases };
}

/** A Topic Alias sink, what to call once its collected packets were posted, and the aliases it knows of. */
export interface TopicAliasSink {
  readonly sink: PacketSink;
  readonly posted: () => Promise<void>;
  /** The connection's aliases as this sink left them: what a remembered session should hold now. */
  readonly aliases: () => OutboundTopicAliases | undefined;
}

/** The PUBLISH carrying `alias`, with `topic` ('' for the alias alone). */
function aliased(packet: IPublishPacket, alias: number, topic: string): IPublishPacket {
  return { ...packet, topic, properties: { ...packet.properties, topicAlias: alias } };
}
