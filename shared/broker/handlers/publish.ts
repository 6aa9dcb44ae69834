import type { IPublishPacket } from 'mqtt-packet';
import type { ConnectionRecord } from '../../ports.js';
import { newMessageId } from '../../storage/message-id.js';
import { isValidTopicName } from '../../topics.js';
import { type BrokerContext, brokerMaximumQoS, type Invocation } from '../context.js';
import { ReasonCode } from '../reason-codes.js';
import { protocolViolation } from './violation.js';

/**
 * PUBLISH from a client: store it for the stream, then acknowledge. The
 * message handler never delivers; the fan-out does, whichever instance runs it.
 */
export async function handlePublish(
  ctx: BrokerContext,
  invocation: Invocation,
  record: ConnectionRecord,
  packet: IPublishPacket,
) {
  // [MQTT-3.3.2-2] no wildcards in a topic name; topic aliases are not offered (maximum 0).
  if (!isValidTopicName(packet.topic)) {
    protocolViolation(invocation, record.protocolVersion, ReasonCode.TopicNameInvalid, 'invalid topic name');
    return;
  }
  if (packet.qos > brokerMaximumQoS) {
    protocolViolation(
      invocation,
      record.protocolVersion,
      ReasonCode.QoSNotSupported,
      `QoS ${packet.qos} not supported`,
    );
    return;
  }
  const now = ctx.now();
  await ctx.store.putMessage({
    publisher: record.clientId,
    messageId: newMessageId(now),
    topic: packet.topic,
    payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload,
    qos: packet.qos,
    retain: packet.retain,
    publishedAt: now,
  });
  // [MQTT-4.3.2-2] PUBACK only once the message is durably stored.
  if (packet.qos === 1) invocation.outbox.push({ cmd: 'puback', messageId: packet.messageId });
}
