import type { Packet } from 'mqtt-packet';
import type { ConnectionRecord } from '../ports.js';
import { decodeFrame, encodeFrame } from '../protocol/frames.js';
import { type BrokerContext, type Invocation, versionOf } from './context.js';
import { handleAck } from './handlers/acks.js';
import { handleConnect } from './handlers/connect.js';
import { handlePublish } from './handlers/publish.js';
import { handleSubscribe, handleUnsubscribe } from './handlers/subscribe.js';
import { protocolViolation } from './handlers/violation.js';
import { keepAliveDue, shouldTouch } from './keepalive.js';
import { ReasonCode } from './reason-codes.js';

export interface FrameOutcome {
  /** Commands of the packets handled, in order. */
  readonly handled: string[];
  /** Why the connection was closed, if it was. */
  readonly closed?: string;
}

// $default invocations of one connection run concurrently, so a packet can
// be handled while the CONNECT before it is still being stored. Look again
// briefly before calling it a packet-before-CONNECT violation.
const connectionLookupDelaysMs = [50, 150, 300];

async function loadConnection(
  ctx: BrokerContext,
  connectionId: string,
): Promise<ConnectionRecord | undefined> {
  let record = await ctx.store.getConnection(connectionId);
  for (const delay of connectionLookupDelaysMs) {
    if (record) break;
    await ctx.sleep(delay);
    record = await ctx.store.getConnection(connectionId);
  }
  return record;
}

function firstPacketIsConnect(frame: string): boolean {
  // The first base64 character encodes the top six bits of the fixed header; CONNECT is 0x10 → 'E'.
  return frame.startsWith('E');
}

async function dispatch(ctx: BrokerContext, invocation: Invocation, packet: Packet): Promise<void> {
  if (packet.cmd === 'connect') {
    if (invocation.record) {
      protocolViolation(
        invocation,
        invocation.record.protocolVersion,
        ReasonCode.ProtocolError,
        'second CONNECT',
      ); // [MQTT-3.1.0-2]
      return;
    }
    await handleConnect(ctx, invocation, packet);
    return;
  }
  const record = invocation.record;
  if (!record) {
    invocation.closeReason = `${packet.cmd.toUpperCase()} before CONNECT`; // [MQTT-3.1.0-1]
    return;
  }
  switch (packet.cmd) {
    case 'publish':
      return handlePublish(ctx, invocation, record, packet);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return handleAck(ctx, invocation, record, packet);
    case 'subscribe':
      return handleSubscribe(ctx, invocation, record, packet);
    case 'unsubscribe':
      return handleUnsubscribe(ctx, invocation, record, packet);
    case 'pingreq':
      invocation.outbox.push({ cmd: 'pingresp' }); // [MQTT-3.12.4-1]
      return;
    case 'disconnect':
      // [MQTT-3.1.2-10] a DISCONNECT discards the will; [MQTT-3.14.4-1] then the server closes.
      await ctx.store.takeWill(record.connectionId);
      invocation.closeReason = 'client DISCONNECT';
      return;
    default:
      // Packets only a server sends (CONNACK, SUBACK, …) or not spoken yet.
      protocolViolation(
        invocation,
        record.protocolVersion,
        ReasonCode.ProtocolError,
        `unexpected ${packet.cmd.toUpperCase()}`,
      );
  }
}

/**
 * Handles one inbound WebSocket frame: decodes its packets, handles them in
 * order, sends the replies in one frame, and closes the connection when the
 * client broke the protocol.
 *
 * @example
 * const outcome = await handleFrame(ctx, event.requestContext.connectionId, event.body);
 */
export async function handleFrame(
  ctx: BrokerContext,
  connectionId: string,
  frame: string,
  frameId?: string,
): Promise<FrameOutcome> {
  const invocation: Invocation = { connectionId, frameId, outbox: [] };
  // A frame opening with CONNECT needs no lookup; anything else needs the
  // connection's record, for its protocol version and its session.
  let decoded = firstPacketIsConnect(frame) ? decodeFrame(frame, undefined, ctx.maxPacketSize) : undefined;
  if (decoded?.packets[0]?.cmd !== 'connect') {
    invocation.record = await loadConnection(ctx, connectionId);
    const now = ctx.now();
    // Any packet counts for keep-alive [MQTT-3.1.2-23]; written sparingly (shared/broker/keepalive.ts).
    if (invocation.record && shouldTouch(invocation.record, now)) {
      const due = keepAliveDue({ ...invocation.record, lastSeen: now });
      await ctx.store.touchConnection(connectionId, now, due);
    }
    decoded = decodeFrame(frame, invocation.record?.protocolVersion, ctx.maxPacketSize);
  }
  const handled: string[] = [];
  for (const packet of decoded.packets) {
    await dispatch(ctx, invocation, packet);
    handled.push(packet.cmd);
    if (invocation.closeReason) break;
  }
  if (!decoded.ok && !invocation.closeReason) {
    // [MQTT-4.8.0-1] a malformed packet closes the connection.
    const code = decoded.reason.startsWith('packet of')
      ? ReasonCode.PacketTooLarge
      : ReasonCode.MalformedPacket;
    protocolViolation(invocation, invocation.record?.protocolVersion, code, decoded.reason);
  }
  if (invocation.outbox.length > 0) {
    await ctx.gateway.send(connectionId, encodeFrame(invocation.outbox, versionOf(invocation)));
  }
  if (invocation.closeReason) await ctx.gateway.close(connectionId);
  return { handled, closed: invocation.closeReason };
}
