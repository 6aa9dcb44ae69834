import type { IPublishPacket } from 'mqtt-packet';
import type { SessionRecord, StoredMessage, SubscriptionRecord } from '../ports.js';
import { mayRead } from './authorization.js';
import type { BrokerContext } from './context.js';
import { type DeliveryOutcome, deliver } from './delivery.js';
import { type Delivery, deliveriesFor, type FanOutResult } from './fanout.js';
import { connectionGone } from './lifecycle.js';
import { largestPacketFor, planPosts } from './outbox.js';
import { packetIdRangesFor } from './packet-id-ranges.js';
import type { SessionCache } from './session-cache.js';
import { sessionCacheFor } from './session-cache.js';
import { isShared } from './shared-subscriptions.js';
import { withTopicAliases } from './topic-aliases.js';

/**
 * A share of one stream batch's fan-out: the batch's messages (stream order)
 * and, by topic, the matching subscriptions of some of the subscribers. Every
 * subscription of a client id is in the same page, so one page holds all of a
 * subscriber's deliveries of the batch and keeps their order.
 */
export interface FanOutPage {
  readonly messages: readonly StoredMessage[];
  readonly matches: ReadonlyArray<readonly [topic: string, subscriptions: readonly SubscriptionRecord[]]>;
}

export interface FanOutOptions {
  /** Most subscribers (client ids) one invocation delivers to; the others go to `runPage`, this many a page. */
  readonly pageSize?: number;
  /**
   * Delivers a page elsewhere (a parallel invocation) and resolves when it is done; rejects when it
   * failed. Absent: every page is delivered here.
   */
  readonly runPage?: (page: FanOutPage) => Promise<FanOutResult>;
  /** Attempts at a page before the whole batch fails (and the stream retries it). */
  readonly pageAttempts?: number;
  /**
   * Most pages running elsewhere at once; the others wait for one to finish. Page invocations draw
   * on the account's Lambda concurrency: past it they are refused (429), so a very large fan-out
   * goes through in rounds rather than in refusals. @default no bound
   */
  readonly pagesInFlight?: number;
}

/**
 * Sessions delivered to at once by one invocation: each is a post, mostly waiting on the network.
 * The management API client keeps as many sockets (shared/runtime.ts), so none waits for one.
 */
export const postsInFlight = 100;

const emptyResult = (): Record<DeliveryOutcome, number> => ({ sent: 0, queued: 0, dropped: 0, gone: 0 });

function addUp(results: readonly FanOutResult[]): FanOutResult {
  const total = emptyResult();
  for (const result of results)
    for (const key of Object.keys(total) as DeliveryOutcome[]) total[key] += result[key];
  return total;
}

/**
 * Delivers a stream batch's messages, in stream order, to every matching
 * subscriber: the subscriptions of each topic and the subscribers' sessions
 * are read once for the whole batch, and each connection gets all its
 * PUBLISHes of the batch in one post (several when they exceed a gateway
 * message), in stream order, so one publisher's order holds [MQTT-4.6.0-5].
 * More subscribers than `pageSize` are split into pages delivered in
 * parallel by `runPage`; the call resolves once every page is done, so the
 * next batch of the shard never overtakes this one.
 *
 * A retried batch is delivered again: QoS 0/1 subscribers may see a message
 * twice (at least once), QoS 2 subscribers get the same packet id again and
 * discard it (exactly once).
 *
 * @example
 * await fanOutBatch(ctx, messages, { pageSize: 1000, runPage: (page) => invokeWorker(page) });
 */
export async function fanOutBatch(
  ctx: BrokerContext,
  messages: readonly StoredMessage[],
  options: FanOutOptions = {},
): Promise<FanOutResult> {
  // The batch's topics share anchors: each is read once for the batch (all stored before it was read).
  const matches = await ctx.store.subscriptionsMatchingEach([...new Set(messages.map((m) => m.topic))]);
  const matched = [...matches.values()];
  // Members of Shared Subscription groups come first and all stay in the first page: a group's
  // member is chosen among all of them, once (shared/broker/shared-subscriptions.ts).
  const members = new Set(matched.flat().flatMap((s) => (isShared(s.filter) ? [s.clientId] : [])));
  const rest = [...new Set(matched.flat().map((s) => s.clientId))].filter((id) => !members.has(id)).sort();
  const clientIds = [...[...members].sort(), ...rest];
  const pageSize = Math.max(1, options.pageSize ?? Number.POSITIVE_INFINITY);
  if (!options.runPage || clientIds.length <= pageSize)
    return fanOutPage(ctx, { messages, matches: [...matches] });
  const runPage = options.runPage;
  const attempts = Math.max(1, options.pageAttempts ?? 3);
  const pages: FanOutPage[] = [];
  const first = Math.max(pageSize, members.size);
  pages.push(pageOf(messages, matches, new Set(clientIds.slice(0, first))));
  for (let start = first; start < clientIds.length; start += pageSize) {
    pages.push(pageOf(messages, matches, new Set(clientIds.slice(start, start + pageSize))));
  }
  const [own, ...others] = pages;
  const elsewhere = async (page: FanOutPage) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await runPage(page);
      } catch (error) {
        if (attempt >= attempts) throw error;
      }
    }
  };
  const results = await Promise.all([
    own ? fanOutPage(ctx, own) : emptyResult(),
    ...inRounds(others, options.pagesInFlight ?? others.length, elsewhere),
  ]);
  return addUp(results);
}

/**
 * `run` over every item, at most `width` at once, each starting as one before it ends; one promise per
 * item, in the items' order. A rejection leaves the items not yet started unstarted.
 */
function inRounds<T, R>(items: readonly T[], width: number, run: (item: T) => Promise<R>): Promise<R>[] {
  let running = 0;
  let failed = false;
  const waiting: Array<() => void> = [];
  // Taken synchronously, so items mapped in one turn cannot all see a free slot.
  const acquire = (): Promise<void> => {
    if (running < Math.max(1, width)) {
      running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => waiting.push(resolve));
  };
  // A finished item hands its slot straight to the next waiting one.
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else running--;
  };
  return items.map(async (item) => {
    await acquire();
    try {
      if (failed) throw new Error('not started: another page of the batch failed');
      return await run(item);
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      release();
    }
  });
}

/** The part of the batch for these client ids: their subscriptions, and only the messages they match. */
function pageOf(
  messages: readonly StoredMessage[],
  matches: ReadonlyMap<string, readonly SubscriptionRecord[]>,
  clientIds: ReadonlySet<string>,
): FanOutPage {
  const mine = [...matches]
    .map(([topic, subscriptions]) => [topic, subscriptions.filter((s) => clientIds.has(s.clientId))] as const)
    .filter(([, subscriptions]) => subscriptions.length > 0);
  const topics = new Set(mine.map(([topic]) => topic));
  return { messages: messages.filter((m) => topics.has(m.topic)), matches: mine };
}

interface SessionPlan {
  readonly session: SessionRecord;
  readonly items: Array<{ readonly message: StoredMessage; readonly delivery: Delivery }>;
}

/**
 * Delivers one page here: one read of the page's sessions (those this
 * instance does not remember, see {@link SessionCache}), then per subscriber
 * its deliveries in stream order and one post of them.
 *
 * @example
 * await fanOutPage(ctx, event.fanOutPage);
 */
export async function fanOutPage(ctx: BrokerContext, page: FanOutPage): Promise<FanOutResult> {
  const matches = new Map(page.matches);
  const subscriptions = page.matches.flatMap(([, subscriptions]) => subscriptions);
  if (subscriptions.length === 0) return emptyResult();
  const sessions = await sessionCacheFor(ctx.store).sessionsFor(subscriptions, ctx.now());
  const plans = new Map<string, SessionPlan>();
  for (const message of page.messages) {
    const subscriptions = matches.get(message.topic);
    if (!subscriptions?.length) continue;
    // Each subscriber only gets what it may read, whatever its filter (a granted `#` with denied topics
    // under it); a Shared Subscription group's member is chosen among those that may.
    const readable = ({ clientId, session }: { clientId: string; session: SessionRecord }) =>
      mayRead(ctx, { user: session.owner, clientId }, message.topic);
    for (const delivery of deliveriesFor(message, subscriptions, sessions, readable)) {
      if (!readable(delivery)) continue;
      const plan = plans.get(delivery.clientId) ?? { session: delivery.session, items: [] };
      plan.items.push({ message, delivery });
      plans.set(delivery.clientId, plan);
    }
  }
  const queue = [...plans.values()];
  const results: FanOutResult[] = [];
  const lanes = Array.from({ length: Math.min(postsInFlight, queue.length) }, async () => {
    for (let plan = queue.shift(); plan; plan = queue.shift())
      results.push(await deliverToSession(ctx, plan));
  });
  await Promise.all(lanes);
  return addUp(results);
}

/** One subscriber's deliveries of the batch, in order, then one post per gateway message of them. */
async function deliverToSession(ctx: BrokerContext, { session, items }: SessionPlan): Promise<FanOutResult> {
  const result = emptyResult();
  const packets: IPublishPacket[] = [];
  const reservePacketId = packetIdSource(ctx, session, items.filter((i) => i.delivery.qos === 1).length);
  const collect = async (packet: IPublishPacket) => {
    packets.push(packet);
    return 'sent' as const;
  };
  // Topic aliases the collected packets set are confirmed once their post returned (ADR 0019).
  const aliases = withTopicAliases(ctx, session, collect, { confirmAfterPost: true });
  for (const { message, delivery } of items) {
    const options = {
      retain: delivery.retain,
      messageKey: `${message.publisher}#${message.messageId}`,
      subscriptionIdentifiers: delivery.subscriptionIdentifiers,
      reservePacketId,
      ...(delivery.share ? { share: delivery.share } : {}),
    };
    result[await deliver(ctx, session, message, delivery.qos, options, aliases.sink)]++;
  }
  const connectionId = session.connectionId;
  if (packets.length === 0 || !connectionId) return result;
  const { posts } = planPosts(packets, session.protocolVersion, largestPacketFor(session.maximumPacketSize));
  for (const [index, post] of posts.entries()) {
    if ((await ctx.gateway.send(connectionId, post)) !== 'gone') {
      if (index < posts.length - 1) continue;
      await aliases.posted();
      // A remembered session keeps the aliases this batch set, so the next batch sends them alone.
      const known = aliases.aliases();
      if (known) sessionCacheFor(ctx.store).refresh({ ...session, outboundTopicAliases: known });
      continue;
    }
    // A stale connection (its $disconnect lost) is cleaned up, never retried; what was queued stays queued.
    result.gone += result.sent;
    result.sent = 0;
    // Nothing of the batch reached the client when its first post found the connection gone: the
    // persistent session's copies wait as never sent, their expiry running [MQTT-3.3.2-5]. (Past the
    // first post some may have reached it; those stay sent, resent with DUP.)
    if (index === 0 && !session.cleanSession) {
      for (const packet of packets) {
        if (packet.qos > 0 && packet.messageId !== undefined)
          await ctx.store.markOutboundUnsent(session.clientId, packet.messageId);
      }
    }
    sessionCacheFor(ctx.store).forget(session.clientId);
    await connectionGone(ctx, connectionId, session);
    break;
  }
  return result;
}

/**
 * Where the session's QoS 1 packet ids come from: a clean session's from the
 * instance's reserved range (no write per delivery); a persistent session's
 * from one reservation for the whole batch, in delivery order, so its queue
 * (ordered by `seq`) keeps the order it was sent in.
 */
function packetIdSource(
  ctx: BrokerContext,
  session: SessionRecord,
  wanted: number,
): () => Promise<{ packetId: number; seq: number }> {
  if (session.cleanSession) {
    const ranges = packetIdRangesFor(ctx.store);
    return () => ranges.next(session.clientId, session.sessionId, wanted, ctx.now());
  }
  let reserved: Promise<Array<{ packetId: number; seq: number }>> | undefined;
  return async () => {
    reserved ??= ctx.store.reservePacketIds(session.clientId, Math.max(1, wanted));
    return (await reserved).shift() ?? ctx.store.reservePacketId(session.clientId);
  };
}
