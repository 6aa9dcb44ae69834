import type { IPublishPacket } from 'mqtt-packet';
import { messageProperties, payloadFormatValid } from '../../message-properties.js';
import type { ConnectionRecord } from '../../ports.js';
import { isValidTopicName } from '../../topics.js';
import { mayPublish } from '../authorization.js';
import type { BrokerContext, Invocation } from '../context.js';
import { inboundReceiveMaximum } from '../flow-control.js';
import { acceptMessage } from '../publishing.js';
import { ReasonCode } from '../reason-codes.js';
import { resolveTopicAlias } from '../topic-aliases.js';
import { protocolViolation } from './violation.js';

/** Who a connection is, for authorization. */
export function subject(record: ConnectionRecord): { user?: string; clientId: string } {
  return { user: record.user, clientId: record.clientId };
}

/**
 * PUBLISH from a client: store it for the stream, then acknowledge. The
 * message handler never delivers; the fan-out does, whichever instance runs it.
 */
export async function handlePublish(
  ctx: BrokerContext,
  invocation: Invocation,
  record: ConnectionRecord,
  received: IPublishPacket,
) {
  // A Topic Alias is resolved first: everything below sees the topic name.
  const packet = await resolveTopicAlias(ctx, invocation, record, received);
  if (!packet) return;
  // [MQTT-3.3.2-2] no wildcards in a topic name.
  if (!isValidTopicName(packet.topic)) {
    protocolViolation(invocation, record.protocolVersion, ReasonCode.TopicNameInvalid, 'invalid topic name');
    return;
  }
  if (!mayPublish(ctx, subject(record), packet.topic)) {
    // 5.0 answers 0x87 [MQTT-3.4.2-1]; 3.1.1 has no code, so it is acknowledged and dropped, as
    // Mosquitto does. A refused QoS 2 PUBREC ends the exchange: nothing awaits PUBREL.
    const refused =
      record.protocolVersion === 5
        ? {
            reasonCode: ReasonCode.NotAuthorized,
            properties: { reasonString: 'not authorized to publish here' },
          }
        : {};
    if (packet.qos === 1) invocation.outbox.push({ cmd: 'puback', messageId: packet.messageId, ...refused });
    if (packet.qos === 2) invocation.outbox.push({ cmd: 'pubrec', messageId: packet.messageId, ...refused });
    return;
  }
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  const properties = record.protocolVersion === 5 ? messageProperties(packet.properties) : undefined;
  if (!payloadFormatValid(properties, payload)) {
    // [MQTT-3.3.2-4] the receiver may check a payload declared UTF-8: 0x99, and the message is not accepted.
    const why = 'payload format indicator is 1 but the payload is not valid UTF-8';
    const refused = { reasonCode: ReasonCode.PayloadFormatInvalid, properties: { reasonString: why } };
    if (packet.qos === 0) protocolViolation(invocation, 5, ReasonCode.PayloadFormatInvalid, why);
    if (packet.qos === 1) invocation.outbox.push({ cmd: 'puback', messageId: packet.messageId, ...refused });
    if (packet.qos === 2) invocation.outbox.push({ cmd: 'pubrec', messageId: packet.messageId, ...refused });
    return;
  }
  const accepted = await acceptMessage(
    ctx,
    record.clientId,
    {
      topic: packet.topic,
      payload,
      qos: packet.qos,
      retain: packet.retain,
      ...(properties ? { properties } : {}),
    },
    packet.messageId,
    inboundReceiveMaximum(ctx, record),
  );
  if (accepted === 'exceeded') {
    // [MQTT-3.3.4-8] more QoS 2 PUBLISHes awaiting PUBREL than the CONNACK allowed.
    const why = `more than ${ctx.limits.receiveMaximum} QoS 2 PUBLISHes awaiting PUBREL (Receive Maximum)`;
    return protocolViolation(invocation, 5, ReasonCode.ReceiveMaximumExceeded, why);
  }
  // [MQTT-4.3.2-2] PUBACK, [MQTT-4.3.3-2] PUBREC, only once the message is durably stored.
  if (packet.qos === 1) invocation.outbox.push({ cmd: 'puback', messageId: packet.messageId });
  if (packet.qos === 2) invocation.outbox.push({ cmd: 'pubrec', messageId: packet.messageId });
}
