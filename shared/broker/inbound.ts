import type { Packet } from 'mqtt-packet';
import type { ConnectionRecord } from '../ports.js';
import { decodeFrame } from '../protocol/frames.js';
import type { BrokerContext, Invocation } from './context.js';
import {
  continueConnectAuthentication,
  handleReauthentication,
  refuseDuringExchange,
} from './enhanced-auth.js';
import { handleAck } from './handlers/acks.js';
import { handleConnect } from './handlers/connect.js';
import { handlePublish } from './handlers/publish.js';
import { handleSubscribe, handleUnsubscribe } from './handlers/subscribe.js';
import { protocolViolation } from './handlers/violation.js';
import { keepAliveDue, shouldTouch } from './keepalive.js';
import { flushOutbox } from './outbox.js';
import { packetFault, refusePacket } from './packet-rules.js';
import { keepAllowance, openAllowance, type PublishAllowance, spendPublish } from './publish-quota.js';
import { ConnackReturnCode, ReasonCode } from './reason-codes.js';
import { expiryAtDisconnect } from './session-expiry.js';
import { disconnectWithWill } from './will-delay.js';

export interface FrameOutcome {
  /** Commands of the packets handled, in order. */
  readonly handled: string[];
  /** Why the connection was closed, if it was. */
  readonly closed?: string;
  /** The error a packet's handler threw, when it was the packet's fault and closed the connection. */
  readonly failure?: Error;
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

/** AUTH is 0xF0 → '8': only such a frame may carry the next step of a CONNECT's authentication. */
function firstPacketIsAuth(frame: string): boolean {
  return frame.startsWith('8');
}

async function dispatch(ctx: BrokerContext, invocation: Invocation, packet: Packet): Promise<void> {
  const exchange = invocation.exchange;
  if (exchange) {
    // The CONNECT awaits its authentication: only AUTH (or DISCONNECT) until CONNACK [MQTT-3.1.2-30].
    return continueConnectAuthentication(ctx, invocation, exchange, packet, (connect, authenticated) => {
      invocation.exchange = undefined;
      return handleConnect(ctx, invocation, connect, authenticated);
    });
  }
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
    const version = packet.protocolVersion;
    if (version === 4 || version === 5) {
      const fault = packetFault(packet, version, ctx.limits);
      if (fault) return refusePacket(invocation, packet, version, fault);
    }
    await handleConnect(ctx, invocation, packet);
    return;
  }
  const record = invocation.record;
  if (!record) {
    if (await refuseDuringExchange(ctx, invocation, packet)) return;
    invocation.closeReason = `${packet.cmd.toUpperCase()} before CONNECT`; // [MQTT-3.1.0-1]
    return;
  }
  // Refused before any handler touches the store with what the packet carries.
  const fault = packetFault(packet, record.protocolVersion, ctx.limits);
  if (fault) return refusePacket(invocation, packet, record.protocolVersion, fault);
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
    case 'auth':
      return handleReauthentication(ctx, invocation, record, packet);
    case 'pingreq':
      invocation.outbox.push({ cmd: 'pingresp' }); // [MQTT-3.12.4-1]
      return;
    case 'disconnect': {
      const next = expiryAtDisconnect(record, packet, ctx.limits.maxSessionExpirySeconds);
      if (next === 'refused')
        return protocolViolation(
          invocation,
          5,
          ReasonCode.ProtocolError,
          'Session Expiry Interval 0 raised at DISCONNECT',
        ); // [MQTT-3.14.2-2]
      // The session ends by the interval the DISCONNECT gave, read back when the connection is gone.
      if (next !== record) await ctx.store.putConnection(next);
      // [MQTT-3.14.4-3] a DISCONNECT discards the will, unless 5.0's 0x04 asks for it; [MQTT-3.14.4-1] then the server closes.
      if (packet.reasonCode !== disconnectWithWill) await ctx.store.takeWill(record.connectionId);
      invocation.closeReason = 'client DISCONNECT';
      return;
    }
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
 * client broke the protocol or its quotas. `sentAt` is when the queue received the
 * frame (SQS `SentTimestamp`), the clock of the publish rate quota; absent, now.
 *
 * @example
 * const outcome = await handleFrame(ctx, event.requestContext.connectionId, event.body);
 */
export async function handleFrame(
  ctx: BrokerContext,
  connectionId: string,
  frame: string,
  frameId?: string,
  sourceIp?: string,
  sentAt?: number,
): Promise<FrameOutcome> {
  const invocation: Invocation = { connectionId, frameId, sourceIp, outbox: [] };
  // A frame opening with CONNECT needs no lookup; anything else needs the
  // connection's record, for its protocol version and its session.
  let decoded = firstPacketIsConnect(frame) ? decodeFrame(frame, undefined, ctx.maxPacketSize) : undefined;
  // An AUTH frame may be the next step of a CONNECT's authentication, which has no record yet.
  const exchange = firstPacketIsAuth(frame)
    ? await ctx.store.getAuthExchange(connectionId, ctx.now())
    : undefined;
  if (exchange?.connect) {
    invocation.exchange = { ...exchange, connect: exchange.connect };
    decoded = decodeFrame(frame, 5, ctx.maxPacketSize);
  } else if (decoded?.packets[0]?.cmd !== 'connect') {
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
  let failure: Error | undefined;
  if (decoded.packets.length > ctx.limits.maxPacketsPerFrame) {
    // One connection's frames run one at a time (its FIFO group): bounding the work of a frame
    // bounds the connection's rate and keeps the invocation inside its timeout, with no counter.
    const first = decoded.packets[0];
    const version =
      invocation.record?.protocolVersion ?? (first.cmd === 'connect' && first.protocolVersion === 5 ? 5 : 4);
    protocolViolation(
      invocation,
      version,
      ReasonCode.MessageRateTooHigh,
      `${decoded.packets.length} packets in one frame`,
    );
    decoded = { ok: true, packets: [] };
  }
  let allowance: PublishAllowance | undefined;
  for (const packet of decoded.packets) {
    if (packet.cmd === 'publish' && invocation.record) {
      allowance ??= openAllowance(ctx, invocation.record, sentAt ?? ctx.now());
      if (allowance && !spendPublish(allowance)) {
        // The packets before it were handled; this one and the rest are not.
        const { maxPublishesPerSecond, publishBurst } = ctx.limits;
        protocolViolation(
          invocation,
          invocation.record.protocolVersion,
          ReasonCode.MessageRateTooHigh,
          `PUBLISH rate above ${maxPublishesPerSecond}/s (burst ${publishBurst})`,
        );
        break;
      }
    }
    failure = await dispatchOrRefuse(ctx, invocation, packet);
    handled.push(packet.cmd);
    if (invocation.closeReason) break;
  }
  if (allowance && !invocation.closeReason) await keepAllowance(ctx, allowance);
  if (!decoded.ok && !invocation.closeReason) {
    // A frame opening with CONNECT skipped the lookup; one at an unknown level is still a second
    // CONNECT on an open connection [MQTT-3.1.0-2], answered as such rather than with a CONNACK.
    if (decoded.fault === 'protocol-level') invocation.record ??= await loadConnection(ctx, connectionId);
    if (decoded.fault === 'protocol-level' && invocation.record) {
      protocolViolation(
        invocation,
        invocation.record.protocolVersion,
        ReasonCode.ProtocolError,
        'second CONNECT',
      );
    } else if (decoded.fault === 'protocol-level') {
      // [MQTT-3.1.2-2] an unknown protocol level: CONNACK 1, in the 3.1.1 form every level reads.
      invocation.protocolVersion = 4;
      invocation.outbox.push({
        cmd: 'connack',
        sessionPresent: false,
        returnCode: ConnackReturnCode.UnacceptableProtocolVersion,
      });
      invocation.closeReason = decoded.reason;
    } else {
      // [MQTT-4.8.0-1] a malformed packet closes the connection.
      const code =
        decoded.fault === 'too-large'
          ? ReasonCode.PacketTooLarge
          : decoded.fault === 'protocol-error'
            ? ReasonCode.ProtocolError
            : ReasonCode.MalformedPacket;
      protocolViolation(invocation, invocation.record?.protocolVersion, code, decoded.reason);
    }
  }
  await flushOutbox(ctx, invocation);
  if (invocation.closeReason) await ctx.gateway.close(connectionId);
  return { handled, closed: invocation.closeReason, ...(failure ? { failure } : {}) };
}

// AWS SDK v3 error names of passing trouble: throttling, capacity, conflicts, the service's own failures.
const transientErrorNames = new Set([
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TransactionConflictException',
  'TransactionInProgressException',
  'InternalServerError',
  'InternalFailure',
  'ServiceUnavailable',
  'LimitExceededException',
  'TooManyRequestsException',
  'TimeoutError',
]);
// Node's codes for a network that failed under the SDK.
const transientErrorCodes = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']);

/**
 * Whether an error is the platform's passing trouble (throttling, a 5xx, a
 * broken socket, a conflicting transaction), so the frame is worth retrying;
 * any other error is taken as the packet's fault. Reads only the shape of
 * AWS SDK v3 errors (`name`, `$retryable`, `$metadata`), no SDK types.
 *
 * @example
 * isTransientError(Object.assign(new Error('slow down'), { name: 'ThrottlingException' })); // true
 * isTransientError(new TypeError('x is undefined')); // false
 */
export function isTransientError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const shaped = error as Error & {
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: number };
    code?: unknown;
    CancellationReasons?: ReadonlyArray<{ Code?: string }>;
  };
  if (shaped.$retryable) return true;
  const status = shaped.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (shaped.name === 'TransactionCanceledException')
    return (shaped.CancellationReasons ?? []).some(
      (r) => r.Code === 'TransactionConflict' || r.Code === 'ThrottlingError',
    );
  return transientErrorNames.has(shaped.name) || transientErrorCodes.has(String(shaped.code));
}

/**
 * Handles one packet, so that no packet can stall its connection: a transient
 * error is thrown on, and the queue retries the frame; any other error (a
 * handler bug, a store refusing what the packet carries) ends this connection
 * only, with DISCONNECT 0x83 for MQTT 5, instead of a retry that would fail the
 * same way five times and dead-letter the frames behind it. Returns that error.
 */
async function dispatchOrRefuse(
  ctx: BrokerContext,
  invocation: Invocation,
  packet: Packet,
): Promise<Error | undefined> {
  try {
    await dispatch(ctx, invocation, packet);
    return undefined;
  } catch (error) {
    if (isTransientError(error)) throw error;
    const failure = error instanceof Error ? error : new Error(String(error));
    const version =
      invocation.record?.protocolVersion ??
      invocation.protocolVersion ??
      (packet.cmd === 'connect' && packet.protocolVersion === 5 ? 5 : 4);
    if (packet.cmd === 'connect' && !invocation.outbox.some((p) => p.cmd === 'connack')) {
      // Refused as CONNECT would be, so the client is not left waiting for a CONNACK; what the
      // CONNECT stored is cleaned up when the close comes back as $disconnect.
      refusePacket(invocation, packet, version, {
        code: ReasonCode.ImplementationSpecificError,
        v4ConnackCode: ConnackReturnCode.ServerUnavailable,
        reason: `CONNECT failed: ${failure.message}`,
      });
    } else {
      protocolViolation(
        invocation,
        version,
        ReasonCode.ImplementationSpecificError,
        `${packet.cmd.toUpperCase()} failed: ${failure.message}`,
      );
    }
    return failure;
  }
}
