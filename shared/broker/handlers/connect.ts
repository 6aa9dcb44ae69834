import { randomUUID } from 'node:crypto';
import type { IConnackPacket, IConnectPacket } from 'mqtt-packet';
import type { ConnectionRecord, SessionRecord } from '../../ports.js';
import type { ProtocolVersion } from '../../protocol/frames.js';
import { isValidTopicName } from '../../topics.js';
import { type BrokerContext, brokerMaximumQoS, type Invocation } from '../context.js';
import { ConnackReturnCode, ReasonCode } from '../reason-codes.js';

/** Client ids the broker accepts: any MQTT UTF-8 string up to 65,535 bytes, [MQTT-3.1.3-5] allows more than the minimum. */
function isValidClientId(clientId: string): boolean {
  return !clientId.includes('\u0000') && clientId.isWellFormed() && Buffer.byteLength(clientId) <= 65_535;
}

function refuse(
  invocation: Invocation,
  version: ProtocolVersion,
  v4Code: number,
  v5Code: number,
  why: string,
) {
  // [MQTT-3.2.2-5] a refusing CONNACK is followed by closing the connection.
  const connack: IConnackPacket =
    version === 5
      ? { cmd: 'connack', sessionPresent: false, reasonCode: v5Code }
      : { cmd: 'connack', sessionPresent: false, returnCode: v4Code };
  invocation.outbox.push(connack);
  invocation.closeReason = why;
}

/**
 * CONNECT: claim the connection, take the client id over from any other
 * connection, start or resume the session, answer CONNACK.
 */
export async function handleConnect(ctx: BrokerContext, invocation: Invocation, packet: IConnectPacket) {
  const version = packet.protocolVersion;
  if (version !== 4 && version !== 5) {
    // [MQTT-3.1.2-2] level 3 (MQTT 3.1) is not spoken: return code 1, then close.
    refuse(
      invocation,
      4,
      ConnackReturnCode.UnacceptableProtocolVersion,
      ReasonCode.UnsupportedProtocolVersion,
      'protocol level',
    );
    return;
  }
  invocation.protocolVersion = version;
  const clean = packet.clean !== false;
  let clientId = packet.clientId;
  let assigned = false;
  if (clientId.length === 0) {
    // [MQTT-3.1.3-8] a 3.1.1 client without an id must ask for a clean session.
    if (version === 4 && !clean) {
      refuse(
        invocation,
        version,
        ConnackReturnCode.IdentifierRejected,
        ReasonCode.ClientIdentifierNotValid,
        'empty client id with clean session 0',
      );
      return;
    }
    clientId = `nimbus-${randomUUID()}`; // [MQTT-3.1.3-6]
    assigned = true;
  }
  if (!isValidClientId(clientId)) {
    refuse(
      invocation,
      version,
      ConnackReturnCode.IdentifierRejected,
      ReasonCode.ClientIdentifierNotValid,
      'invalid client id',
    );
    return;
  }
  if (packet.will && !isValidTopicName(packet.will.topic)) {
    refuse(
      invocation,
      version,
      ConnackReturnCode.IdentifierRejected,
      ReasonCode.TopicNameInvalid,
      'invalid will topic',
    );
    invocation.outbox.length = 0; // 3.1.1 has no CONNACK code for this: close without one.
    if (version === 5)
      invocation.outbox.push({
        cmd: 'connack',
        sessionPresent: false,
        reasonCode: ReasonCode.TopicNameInvalid,
      });
    return;
  }
  if (packet.will && (packet.will.qos ?? 0) > brokerMaximumQoS) {
    refuse(
      invocation,
      version,
      ConnackReturnCode.IdentifierRejected,
      ReasonCode.QoSNotSupported,
      'will QoS not supported',
    );
    invocation.outbox.length = 0;
    if (version === 5)
      invocation.outbox.push({
        cmd: 'connack',
        sessionPresent: false,
        reasonCode: ReasonCode.QoSNotSupported,
      });
    return;
  }

  const record = (sessionId: string): ConnectionRecord => ({
    connectionId: invocation.connectionId,
    clientId,
    protocolVersion: version,
    sessionId,
    cleanSession: clean,
    keepAliveSeconds: packet.keepalive ?? 0,
    connectedAt: ctx.now(),
  });
  let previous = await ctx.store.getSession(clientId);
  let plan = planSession(previous, clean, randomUUID);
  invocation.record = record(plan.sessionId);
  if (!(await ctx.store.claimConnection(invocation.record))) {
    // [MQTT-3.1.0-2] a second CONNECT on one connection is a protocol violation.
    invocation.record = undefined;
    invocation.closeReason = 'second CONNECT';
    return;
  }
  const session = (): SessionRecord => ({
    clientId,
    sessionId: plan.sessionId,
    connectionId: invocation.connectionId,
    protocolVersion: version,
    cleanSession: clean,
  });
  while (!(await ctx.store.replaceSession(session(), previous))) {
    // Another connection of this client id got in between: start over from what it wrote.
    previous = await ctx.store.getSession(clientId);
    const replanned = planSession(previous, clean, randomUUID);
    if (replanned.sessionId !== plan.sessionId) {
      invocation.record = record(replanned.sessionId);
      await ctx.store.putConnection(invocation.record);
    }
    plan = replanned;
  }
  const previousConnectionId =
    previous?.connectionId !== invocation.connectionId ? previous?.connectionId : undefined;
  const resumed = plan.resumed;
  if (previousConnectionId) {
    // [MQTT-3.1.4-2] the server disconnects the existing client with the same id.
    await ctx.gateway.close(previousConnectionId);
  }
  if (clean) await ctx.store.deleteStaleSubscriptions(clientId, plan.sessionId);

  invocation.outbox.push(
    version === 5
      ? {
          cmd: 'connack',
          sessionPresent: resumed,
          reasonCode: ReasonCode.Success,
          properties: {
            ...(assigned ? { assignedClientIdentifier: clientId } : {}),
            maximumQoS: brokerMaximumQoS,
            maximumPacketSize: ctx.maxPacketSize,
            topicAliasMaximum: 0,
            retainAvailable: false,
            sharedSubscriptionAvailable: false,
            wildcardSubscriptionAvailable: true,
            subscriptionIdentifiersAvailable: false,
          },
        }
      : // [MQTT-3.2.2-1] session present is 0 for a clean session.
        { cmd: 'connack', sessionPresent: resumed, returnCode: ConnackReturnCode.Accepted },
  );
}

/**
 * Which session a CONNECT gets: the stored one when a persistent session
 * asks for it and one exists [MQTT-3.1.2-4], else a new one [MQTT-3.1.2-6].
 *
 * @example
 * planSession(undefined, false, () => 'n'); // { sessionId: 'n', resumed: false }
 */
export function planSession(
  previous: SessionRecord | undefined,
  clean: boolean,
  newId: () => string,
): { sessionId: string; resumed: boolean } {
  if (!clean && previous && !previous.cleanSession) return { sessionId: previous.sessionId, resumed: true };
  return { sessionId: newId(), resumed: false };
}
