import type { IConnectPacket } from 'mqtt-packet';
import type { ConnectionRecord, SessionRecord } from '../../ports.js';
import { encodeFrame } from '../../protocol/frames.js';
import {
  type AcceptedConnect,
  buildConnack,
  type ConnectRefusal,
  clientIdTakenRefusal,
  connectionRecord,
  credentialsRefusal,
  expiredOutbound,
  ownsSession,
  planSession,
  resumeOutbox,
  sessionRecord,
  throttledRefusal,
  userConnectionsRefusal,
  validateConnect,
  willRefusal,
} from '../connect-decisions.js';
import type { BrokerContext, Invocation } from '../context.js';
import {
  type Authenticated,
  authenticationMethodOf,
  startConnectAuthentication,
  withAuthentication,
} from '../enhanced-auth.js';
import { resendWithinReceiveMaximum } from '../flow-control.js';
import { ReasonCode } from '../reason-codes.js';
import { sessionExpired } from '../session-expiry.js';
import { handOffSharedMessages } from '../shared-handoff.js';
import { countUserConnection } from '../user-connections.js';
import { protocolViolation } from './violation.js';

type SessionPlan = ReturnType<typeof planSession>;

/**
 * CONNECT: check the credentials (when the broker has an authenticator), claim
 * the connection, take the client id over from any other connection, start or
 * resume the session, answer CONNACK. The decisions live in connect-decisions.ts. A CONNECT naming
 * an Authentication Method starts an exchange instead (enhanced-auth.ts), which comes back here
 * with `authenticated` when it succeeds.
 */
export async function handleConnect(
  ctx: BrokerContext,
  invocation: Invocation,
  packet: IConnectPacket,
  authenticated?: Authenticated,
) {
  const validated = validateConnect(
    packet,
    ctx.newId,
    ctx.limits.maxSessionExpirySeconds,
    ctx.limits.serverKeepAliveSeconds,
  );
  if (validated.refused) return refuse(invocation, validated);
  invocation.protocolVersion = validated.version;
  // Refused before the connection is claimed, so a refused client takes over no
  // client id and leaves no connection or session behind [MQTT-3.2.2-5].
  let identified: ConnectRefusal | AcceptedConnect;
  if (authenticated) {
    identified = authenticated.user === undefined ? validated : { ...validated, user: authenticated.user };
  } else if (authenticationMethodOf(packet) !== undefined) {
    const started = await startConnectAuthentication(ctx, invocation, validated, packet);
    if (started === 'pending') return; // AUTH 0x18 is on its way; the CONNECT waits in the store.
    if ('refused' in started) return refuse(invocation, started);
    return handleConnect(ctx, invocation, packet, started);
  } else {
    identified = await checkCredentials(ctx, invocation, validated, packet);
  }
  if (identified.refused) return refuse(invocation, identified);
  const connect = identified;
  const willRefused = willRefusal(connect);
  if (willRefused) return refuse(invocation, willRefused);

  const previous = await ctx.store.getSession(connect.clientId);
  // Another user's session: refused before anything of it is read further or changed.
  if (!ownsSession(previous, connect.user)) return refuse(invocation, clientIdTakenRefusal(connect.version));
  // Counted before the connection is claimed or the session touched; a takeover counts once.
  if (!(await countUserConnection(ctx, connect.user, invocation.connectionId, previous?.connectionId)))
    return refuse(invocation, userConnectionsRefusal(connect.version, ctx.limits.maxConnectionsPerUser));
  // [MQTT-3.1.2-23] an expired session is not resumed: it starts fresh, session present 0.
  const plan = planSession(previous, connect.clean || sessionExpired(previous, ctx.now()), ctx.newId);
  const record = {
    ...connectionRecord(connect, invocation, plan.sessionId, ctx.now()),
    ...(authenticated ? { authenticationMethod: authenticated.method } : {}),
  };
  if (!(await claimConnection(ctx, invocation, record))) return;
  invocation.record = record;
  const taken = await takeSession(ctx, invocation, connect, previous, plan);
  if (!taken) return;
  const replaced = taken.previous?.connectionId;
  if (replaced && replaced !== invocation.connectionId) {
    // [MQTT-3.1.4-2] the server disconnects the existing client with the same id; a 5.0 one hears why first.
    if (taken.previous?.protocolVersion === 5)
      await ctx.gateway.send(
        replaced,
        encodeFrame([{ cmd: 'disconnect', reasonCode: ReasonCode.SessionTakenOver }], 5),
      );
    await ctx.gateway.close(replaced);
  }
  if (!taken.plan.resumed) {
    // [MQTT-3.1.2-6] [MQTT-3.1.2-4] a new session discards any previous (clean start, or expired) session's state.
    await ctx.store.deleteStaleSubscriptions(connect.clientId, taken.plan.sessionId);
    // §4.8.2: the old session's unacknowledged group messages go to other members.
    if (taken.previous) await handOffSharedMessages(ctx, connect.clientId);
    await ctx.store.deleteDeliveries(connect.clientId);
  }
  invocation.outbox.push(
    withAuthentication(
      buildConnack(
        connect,
        taken.plan.resumed,
        ctx.maxPacketSize,
        ctx.limits.topicAliasMaximum,
        ctx.limits.receiveMaximum,
      ),
      authenticated,
    ),
  );
  if (taken.plan.resumed) {
    const queued = await ctx.store.outboundMessages(connect.clientId);
    const now = ctx.now();
    for (const expired of expiredOutbound(queued, now))
      await ctx.store.deleteOutbound(connect.clientId, expired.packetId);
    const resends = resumeOutbox(queued, connect.version, now);
    // [MQTT-3.3.4-9] no more than the client's Receive Maximum at once; the rest are held back.
    const current = invocation.record ?? record;
    invocation.outbox.push(...(await resendWithinReceiveMaximum(ctx, current, queued, resends)));
  } else if (connect.receiveMaximum !== undefined) {
    await ctx.store.resetFlow(connect.clientId, 0); // nothing the last connection counted holds this one back
  }
}

function refuse(invocation: Invocation, refusal: ConnectRefusal): void {
  invocation.protocolVersion = refusal.version;
  if (refusal.connack) invocation.outbox.push(refusal.connack);
  invocation.closeReason = refusal.reason;
}

/**
 * Asks the authenticator (when there is one), behind the login throttle (when there is one); the
 * accepted CONNECT carries the user it names.
 */
async function checkCredentials(
  ctx: BrokerContext,
  invocation: Invocation,
  connect: AcceptedConnect,
  packet: IConnectPacket,
): Promise<ConnectRefusal | AcceptedConnect> {
  if (!ctx.authenticator) return connect;
  const { username, password } = packet;
  const keys = { username, sourceIp: invocation.sourceIp };
  // While throttled, the password is not even checked: guesses cost the guesser time, not us CPU.
  if (ctx.loginThrottle && (await ctx.loginThrottle.blockedFor(keys)) > 0)
    return throttledRefusal(connect.version);
  const decision = await ctx.authenticator.authenticate({
    clientId: connect.clientId,
    username,
    password,
    sourceIp: invocation.sourceIp,
  });
  if (!decision.ok) {
    await ctx.loginThrottle?.failed(keys);
    return credentialsRefusal(connect.version, decision.reason);
  }
  await ctx.loginThrottle?.succeeded(keys);
  return decision.user === undefined ? connect : { ...connect, user: decision.user };
}

/**
 * Stores the connection record; false, with the connection closing, when the
 * connection already has one from another CONNECT [MQTT-3.1.0-2].
 */
async function claimConnection(
  ctx: BrokerContext,
  invocation: Invocation,
  record: ConnectionRecord,
): Promise<boolean> {
  if (await ctx.store.claimConnection(record)) return true;
  const existing = await ctx.store.getConnection(invocation.connectionId);
  if (invocation.frameId === undefined || existing?.connectFrameId !== invocation.frameId) {
    // [MQTT-3.1.0-2] a second CONNECT on one connection is a protocol violation.
    invocation.protocolVersion = existing?.protocolVersion;
    protocolViolation(invocation, existing?.protocolVersion, ReasonCode.ProtocolError, 'second CONNECT');
    return false;
  }
  // The same CONNECT again: the queue redelivered it after a failure. Finish what the first try began.
  await ctx.store.putConnection(record);
  return true;
}

/**
 * Points the client id's session at this connection. When another connection
 * of the client id wrote in between, starts over from what it wrote (and
 * moves the connection record to the new session id if that changes).
 * Returns the session replaced and the plan that won.
 */
async function takeSession(
  ctx: BrokerContext,
  invocation: Invocation,
  connect: AcceptedConnect,
  previous: SessionRecord | undefined,
  plan: SessionPlan,
): Promise<{ previous: SessionRecord | undefined; plan: SessionPlan } | undefined> {
  while (
    !(await ctx.store.replaceSession(
      sessionRecord(connect, plan.sessionId, invocation.connectionId),
      previous,
    ))
  ) {
    previous = await ctx.store.getSession(connect.clientId);
    if (!ownsSession(previous, connect.user)) {
      // Another user's CONNECT started a session with this client id in between: give it up.
      await ctx.store.deleteConnection(invocation.connectionId);
      invocation.record = undefined;
      refuse(invocation, clientIdTakenRefusal(connect.version));
      return undefined;
    }
    const replanned = planSession(previous, connect.clean || sessionExpired(previous, ctx.now()), ctx.newId);
    if (replanned.sessionId !== plan.sessionId) {
      // Spread over the old record so what CONNECT added to it (the authentication method) stays.
      invocation.record = {
        ...invocation.record,
        ...connectionRecord(connect, invocation, replanned.sessionId, ctx.now()),
      };
      await ctx.store.putConnection(invocation.record);
    }
    plan = replanned;
  }
  return { previous, plan };
}
