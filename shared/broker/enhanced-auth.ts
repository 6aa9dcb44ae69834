/**
 * MQTT 5 enhanced authentication (§4.12) on stateless instances: the CONNECT's Authentication
 * Method starts an exchange through the `EnhancedAuthenticator` port (shared/auth/enhanced.ts);
 * while it goes on, the CONNECT and the method's state wait in a short-lived store item, and only
 * AUTH (or DISCONNECT) may arrive until CONNACK. After CONNACK, AUTH 0x19 re-authenticates
 * (docs/adr/0022-enhanced-authentication-and-sys-topics.md).
 */
import type { IAuthPacket, IConnackPacket, IConnectPacket, Packet } from 'mqtt-packet';
import type { AuthStep } from '../auth/enhanced.js';
import type { AuthExchange, ConnectionRecord } from '../ports.js';
import { decodeFrame, encodeFrame } from '../protocol/frames.js';
import { type AcceptedConnect, type ConnectRefusal, throttledRefusal } from './connect-decisions.js';
import type { BrokerContext, Invocation } from './context.js';
import { protocolViolation } from './handlers/violation.js';
import { ReasonCode } from './reason-codes.js';

/** MQTT 5 reason codes of the exchange (§2.4). */
export const AuthReason = {
  Success: 0x00,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  BadAuthenticationMethod: 0x8c,
} as const;

/** How long the broker waits for the client's next AUTH before forgetting the exchange. */
export const authExchangeTtlMs = 60_000;

/** An exchange that succeeded: who the client is, and what CONNACK tells it. */
export interface Authenticated {
  readonly method: string;
  readonly user?: string;
  readonly data?: Uint8Array;
}

const failureCodes = {
  'bad-credentials': ReasonCode.BadUserNameOrPassword,
  'not-authorized': ReasonCode.NotAuthorized,
  'bad-method': AuthReason.BadAuthenticationMethod,
} as const;

function connackRefusal(code: number, reason: string): ConnectRefusal {
  // [MQTT-4.12.0-4] a refused exchange: CONNACK 0x80 or above, then the connection closes.
  return {
    refused: true,
    version: 5,
    connack: { cmd: 'connack', sessionPresent: false, reasonCode: code },
    reason,
  };
}

function authPacket(reasonCode: number, method: string, data?: Uint8Array): IAuthPacket {
  // [MQTT-4.12.0-5] every AUTH names the CONNECT's method.
  return {
    cmd: 'auth',
    reasonCode,
    properties: { authenticationMethod: method, ...(data ? { authenticationData: Buffer.from(data) } : {}) },
  };
}

/** The CONNECT's Authentication Method, if the client asked for enhanced authentication. */
export function authenticationMethodOf(packet: IConnectPacket): string | undefined {
  return packet.protocolVersion === 5 ? packet.properties?.authenticationMethod : undefined;
}

/**
 * The success CONNACK of an exchange names the method [MQTT-4.12.0-5] and carries the method's last
 * data; without an exchange it is returned as it is.
 */
export function withAuthentication(
  connack: IConnackPacket,
  authenticated: Authenticated | undefined,
): IConnackPacket {
  if (!authenticated) return connack;
  return {
    ...connack,
    properties: {
      ...connack.properties,
      authenticationMethod: authenticated.method,
      ...(authenticated.data ? { authenticationData: Buffer.from(authenticated.data) } : {}),
    },
  };
}

/**
 * Starts the exchange a CONNECT asks for. Returns the refusal, the authenticated identity when the
 * method is done in one step, or 'pending' with AUTH 0x18 in the outbox and the exchange stored.
 */
export async function startConnectAuthentication(
  ctx: BrokerContext,
  invocation: Invocation,
  connect: AcceptedConnect,
  packet: IConnectPacket,
): Promise<ConnectRefusal | Authenticated | 'pending'> {
  const method = authenticationMethodOf(packet) ?? '';
  // [MQTT-4.12.0-1] a method the broker does not support: CONNACK 0x8C, and the connection closes.
  if (!ctx.enhancedAuthenticator?.methods.includes(method))
    return connackRefusal(
      AuthReason.BadAuthenticationMethod,
      `authentication method "${method}" not supported`,
    );
  const keys = { username: packet.username, sourceIp: invocation.sourceIp };
  if (ctx.loginThrottle && (await ctx.loginThrottle.blockedFor(keys)) > 0) return throttledRefusal(5);
  const client = { clientId: connect.clientId, username: packet.username, sourceIp: invocation.sourceIp };
  const step = await ctx.enhancedAuthenticator.start(method, packet.properties?.authenticationData, client);
  const connectBytes = Buffer.from(encodeFrame([packet], 5), 'base64');
  return settleConnectStep(ctx, invocation, step, method, connectBytes, keys);
}

async function settleConnectStep(
  ctx: BrokerContext,
  invocation: Invocation,
  step: AuthStep,
  method: string,
  connect: Uint8Array,
  keys: { username?: string; sourceIp?: string },
): Promise<ConnectRefusal | Authenticated | 'pending'> {
  if (step.step === 'continue') {
    const exchange: AuthExchange = {
      connectionId: invocation.connectionId,
      method,
      state: step.state,
      connect,
      expiresAt: ctx.now() + authExchangeTtlMs,
    };
    await ctx.store.putAuthExchange(exchange);
    // [MQTT-4.12.0-2] more is needed: AUTH 0x18.
    invocation.outbox.push(authPacket(AuthReason.ContinueAuthentication, method, step.data));
    return 'pending';
  }
  if (step.step === 'failure') {
    await ctx.loginThrottle?.failed(keys);
    return connackRefusal(failureCodes[step.reason], `authentication (${method}) failed: ${step.reason}`);
  }
  await ctx.loginThrottle?.succeeded(keys);
  return {
    method,
    ...(step.user === undefined ? {} : { user: step.user }),
    ...(step.data ? { data: step.data } : {}),
  };
}

/** Refuses the connection before CONNACK: CONNACK with the code, and the exchange forgotten. */
async function refuseExchange(ctx: BrokerContext, invocation: Invocation, refusal: ConnectRefusal) {
  await ctx.store.deleteAuthExchange(invocation.connectionId);
  invocation.protocolVersion = 5;
  if (refusal.connack) invocation.outbox.push(refusal.connack);
  invocation.closeReason = refusal.reason;
}

/**
 * A packet on a connection whose CONNECT awaits the end of its exchange. AUTH 0x18 naming the
 * method goes on with the exchange, and on success the CONNECT is handled as authenticated
 * (`finish`, the CONNECT handler); DISCONNECT ends it quietly; anything else is a Protocol Error
 * [MQTT-3.1.2-30].
 */
export async function continueConnectAuthentication(
  ctx: BrokerContext,
  invocation: Invocation,
  exchange: AuthExchange & { readonly connect: Uint8Array },
  packet: Packet,
  finish: (packet: IConnectPacket, authenticated: Authenticated) => Promise<void>,
): Promise<void> {
  invocation.protocolVersion = 5;
  if (packet.cmd !== 'auth') return endExchangeEarly(ctx, invocation, packet);
  // [MQTT-4.12.0-3] the client answers with 0x18; [MQTT-4.12.0-5] naming the CONNECT's method.
  if (
    packet.reasonCode !== AuthReason.ContinueAuthentication ||
    packet.properties?.authenticationMethod !== exchange.method
  )
    return refuseExchange(
      ctx,
      invocation,
      connackRefusal(
        ReasonCode.ProtocolError,
        "AUTH without reason 0x18 or the CONNECT's authentication method",
      ),
    );
  const decoded = decodeFrame(
    Buffer.from(exchange.connect).toString('base64'),
    undefined,
    Number.MAX_SAFE_INTEGER,
  );
  const connect = decoded.packets[0];
  if (connect?.cmd !== 'connect')
    throw new Error('the stored CONNECT of an authentication exchange is unreadable');
  const keys = { username: connect.username, sourceIp: invocation.sourceIp };
  const client = { clientId: connect.clientId, username: connect.username, sourceIp: invocation.sourceIp };
  const step = await enhanced(ctx).continue(
    exchange.method,
    exchange.state,
    packet.properties?.authenticationData,
    client,
  );
  const settled = await settleConnectStep(ctx, invocation, step, exchange.method, exchange.connect, keys);
  if (settled === 'pending') return;
  if ('refused' in settled) return refuseExchange(ctx, invocation, settled);
  await finish(connect, settled);
  // Forgotten only once the CONNECT is done, so a redelivered final AUTH can finish it again.
  await ctx.store.deleteAuthExchange(invocation.connectionId);
}

function enhanced(ctx: BrokerContext) {
  if (!ctx.enhancedAuthenticator)
    throw new Error('an authentication exchange without an enhanced authenticator');
  return ctx.enhancedAuthenticator;
}

/**
 * A packet other than AUTH before the exchange's CONNACK: DISCONNECT ends it quietly, anything
 * else is a Protocol Error, CONNACK 0x82 [MQTT-3.1.2-30]. The exchange is forgotten.
 */
async function endExchangeEarly(ctx: BrokerContext, invocation: Invocation, packet: Packet): Promise<void> {
  if (packet.cmd !== 'disconnect')
    return refuseExchange(
      ctx,
      invocation,
      connackRefusal(ReasonCode.ProtocolError, `${packet.cmd.toUpperCase()} before the authentication ended`),
    );
  await ctx.store.deleteAuthExchange(invocation.connectionId);
  invocation.closeReason = 'client DISCONNECT during authentication';
}

/**
 * A packet from a connection with no record: if its CONNECT awaits an exchange, the packet ends it
 * ({@link endExchangeEarly}) and this returns true; false when no exchange is pending, so the
 * packet is the usual "before CONNECT" violation.
 */
export async function refuseDuringExchange(
  ctx: BrokerContext,
  invocation: Invocation,
  packet: Packet,
): Promise<boolean> {
  const exchange = await ctx.store.getAuthExchange(invocation.connectionId, ctx.now());
  if (!exchange?.connect) return false;
  invocation.protocolVersion = 5;
  await endExchangeEarly(ctx, invocation, packet);
  return true;
}

/**
 * AUTH on an open connection: re-authentication [MQTT-4.12.1-1]. 0x19 starts it with the method
 * the connection authenticated with, 0x18 continues it; success answers AUTH 0x00, failure
 * DISCONNECT with the reason code [MQTT-4.12.1-2]. The identity may not change: another user
 * than the connection's is a failure.
 */
export async function handleReauthentication(
  ctx: BrokerContext,
  invocation: Invocation,
  record: ConnectionRecord,
  packet: IAuthPacket,
): Promise<void> {
  const method = record.authenticationMethod;
  // [MQTT-4.12.0-7] no AUTH from a client whose CONNECT named no method.
  if (method === undefined)
    return protocolViolation(
      invocation,
      5,
      ReasonCode.ProtocolError,
      'AUTH without an authentication method at CONNECT',
    );
  if (packet.properties?.authenticationMethod !== method)
    return protocolViolation(
      invocation,
      5,
      ReasonCode.ProtocolError,
      'AUTH names another authentication method',
    ); // [MQTT-4.12.1-1]
  const client = { clientId: record.clientId, username: record.user, sourceIp: invocation.sourceIp };
  const data = packet.properties?.authenticationData;
  let step: AuthStep;
  if (packet.reasonCode === AuthReason.ReAuthenticate) {
    step = await enhanced(ctx).start(method, data, client);
  } else {
    const exchange =
      packet.reasonCode === AuthReason.ContinueAuthentication
        ? await ctx.store.getAuthExchange(record.connectionId, ctx.now())
        : undefined;
    if (!exchange || exchange.connect)
      return protocolViolation(
        invocation,
        5,
        ReasonCode.ProtocolError,
        'AUTH 0x18 with no re-authentication going on',
      );
    step = await enhanced(ctx).continue(method, exchange.state, data, client);
  }
  if (step.step === 'continue') {
    await ctx.store.putAuthExchange({
      connectionId: record.connectionId,
      method,
      state: step.state,
      expiresAt: ctx.now() + authExchangeTtlMs,
    });
    invocation.outbox.push(authPacket(AuthReason.ContinueAuthentication, method, step.data));
    return;
  }
  await ctx.store.deleteAuthExchange(record.connectionId);
  if (step.step === 'failure')
    return protocolViolation(
      invocation,
      5,
      // DISCONNECT has neither 0x86 nor 0x8C (5.0 §3.14.2.1): every failure is Not Authorized there.
      ReasonCode.NotAuthorized,
      `re-authentication failed: ${step.reason}`,
    );
  if (step.user !== record.user)
    return protocolViolation(invocation, 5, ReasonCode.NotAuthorized, 're-authenticated as another user');
  invocation.outbox.push(authPacket(AuthReason.Success, method, step.data));
}
