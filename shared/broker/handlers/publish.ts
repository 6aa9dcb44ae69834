import type { IPublishPacket } from 'mqtt-packet';
import type { ConnectionRecord } from '../../ports.js';
import { isValidTopicName } from '../../topics.js';
import type { BrokerContext, Invocation } from '../context.js';
import { acceptMessage } from '../publishing.js';
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
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  await acceptMessage(
    ctx,
    record.clientId,
    { topic: packet.topic, payload, qos: packet.qos, retain: packet.retain },
    packet.messageId,
  );
  // [MQTT-4.3.2-2] PUBACK, [MQTT-4.3.3-2] PUBREC, only once the message is durably stored.
  if (packet.qos === 1) invocation.outbox.push({ cmd: 'puback', messageId: packet.messageId });
  if (packet.qos === 2) invocation.outbox.push({ cmd: 'pubrec', messageId: packet.messageId });
}
