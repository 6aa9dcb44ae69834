import { randomUUID } from 'node:crypto';
import type { IConnackPacket, IConnectPacket } from 'mqtt-packet';
import type { ConnectionRecord, SessionRecord } from '../../ports.js';
import type { ProtocolVersion } from '../../protocol/frames.js';
import { isValidTopicName } from '../../topics.js';
import type { BrokerContext, Invocation } from '../context.js';
import { ConnackReturnCode, ReasonCode } from '../reason-codes.js';
import { protocolViolation } from './violation.js';

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
 * CONNECT: check the credentials (when the broker has an authenticator), claim
 * the connection, take the client id over from any other connection, start or
 * resume the session, answer CONNACK.
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
  if (ctx.authenticator) {
    const { username, password } = packet;
    if (!(await ctx.authenticator.authenticate({ clientId, username, password }))) {
      // §3.2.2.3 / MQTT 5 §3.2.2.2: refused before the connection is claimed, so a refused client
      // takes over no client id and leaves no connection or session behind [MQTT-3.2.2-5].
      if (username === undefined) {
        refuse(
          invocation,
          version,
          ConnackReturnCode.NotAuthorized,
          ReasonCode.NotAuthorized,
          'not authorized: no user name',
        );
      } else {
        refuse(
          invocation,
          version,
          ConnackReturnCode.BadUserNameOrPassword,
          ReasonCode.BadUserNameOrPassword,
          'bad user name or password',
        );
      }
      return;
    }
  }
  if (packet.will && !isValidTopicName(packet.will.topic)) {
    // 3.1.1 has no CONNACK code for a bad will topic: close without one [MQTT-4.8.0-1]; 5.0 says why.
    if (version === 5) {
      invocation.outbox.push({
        cmd: 'connack',
        sessionPresent: false,
        reasonCode: ReasonCode.TopicNameInvalid,
      });
    }
    invocation.closeReason = 'invalid will topic';
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
    lastSeen: ctx.now(),
    connectFrameId: invocation.frameId,
    will: packet.will && {
      topic: packet.will.topic,
      payload: Buffer.from(packet.will.payload),
      qos: packet.will.qos ?? 0,
      retain: packet.will.retain ?? false,
    },
  });
  let previous = await ctx.store.getSession(clientId);
  let plan = planSession(previous, clean, randomUUID);
  invocation.record = record(plan.sessionId);
  if (!(await ctx.store.claimConnection(invocation.record))) {
    const existing = await ctx.store.getConnection(invocation.connectionId);
    if (invocation.frameId === undefined || existing?.connectFrameId !== invocation.frameId) {
      // [MQTT-3.1.0-2] a second CONNECT on one connection is a protocol violation.
      invocation.record = undefined;
      invocation.protocolVersion = existing?.protocolVersion;
      protocolViolation(invocation, existing?.protocolVersion, ReasonCode.ProtocolError, 'second CONNECT');
      return;
    }
    // The same CONNECT again: the queue redelivered it after a failure. Finish what the first try began.
    await ctx.store.putConnection(invocation.record);
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
  if (clean) {
    // [MQTT-3.1.2-6] a clean session discards any previous session's state.
    await ctx.store.deleteStaleSubscriptions(clientId, plan.sessionId);
    await ctx.store.deleteDeliveries(clientId);
  }

  invocation.outbox.push(
    version === 5
      ? {
          cmd: 'connack',
          sessionPresent: resumed,
          reasonCode: ReasonCode.Success,
          properties: {
            ...(assigned ? { assignedClientIdentifier: clientId } : {}),
            maximumPacketSize: ctx.maxPacketSize,
            topicAliasMaximum: 0,
            retainAvailable: true,
            sharedSubscriptionAvailable: false,
            wildcardSubscriptionAvailable: true,
            subscriptionIdentifiersAvailable: false,
          },
        }
      : // [MQTT-3.2.2-1] session present is 0 for a clean session.
        { cmd: 'connack', sessionPresent: resumed, returnCode: ConnackReturnCode.Accepted },
  );
  if (resumed) {
    // [MQTT-4.4.0-1] resume: resend unacknowledged PUBLISH (DUP set) and PUBREL, in their original order.
    for (const message of await ctx.store.outboundMessages(clientId)) {
      invocation.outbox.push(
        message.released
          ? { cmd: 'pubrel', messageId: message.packetId }
          : {
              cmd: 'publish',
              topic: message.topic,
              payload: Buffer.from(message.payload),
              qos: message.qos,
              retain: message.retain,
              dup: message.sent,
              messageId: message.packetId,
            },
      );
    }
  }
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
