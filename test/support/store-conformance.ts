import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import type {
  BrokerStore,
  ConnectionRecord,
  MessageProperties,
  OutboundMessage,
  RetainedMessage,
  SessionRecord,
  StoredMessage,
  SubscriptionRecord,
} from '../../shared/ports.js';
import { topicAliasConformance } from './store-conformance-topic-aliases.js';

/** A store opened for one test, empty, on the clock the test controls. */
export interface OpenStore {
  readonly store: BrokerStore;
  close(): Promise<void>;
}

/** The test's clock; the store reads it where it stamps a time itself. */
export interface TestClock {
  time: number;
  readonly now: () => number;
}

/**
 * Registers the `BrokerStore` contract (shared/ports.ts) as node:test cases:
 * every port method, conditional outcomes included. Every backend runs it, so
 * the memory store used by fast tests behaves as production's DynamoDB store.
 * `open` is called once per case and must return an empty store.
 *
 * @example
 * storeConformance('MemoryStore', async ({ now }) => ({ store: new MemoryStore({ now }), close: async () => {} }));
 */
export function storeConformance(
  name: string,
  open: (options: { now: () => number }) => Promise<OpenStore>,
): void {
  /** Runs `body` against a fresh store and closes it whatever happens. */
  const withStore = (body: (store: BrokerStore, clock: TestClock) => Promise<void>) => async () => {
    // Today, to the second: DynamoDB Local deletes items whose TTL (from this clock) is past on its own
    // clock, so a clock in the past would let it remove a case's items while the case runs.
    const clock: TestClock = { time: Math.floor(Date.now() / 1000) * 1000, now: () => clock.time };
    const { store, close } = await open({ now: clock.now });
    try {
      await body(store, clock);
    } finally {
      await close();
    }
  };

  describe(`BrokerStore conformance: ${name}`, () => {
    describe('connections', () => {
      test(
        'getConnection: undefined for an unknown connection',
        withStore(async (store) => {
          assert.equal(await store.getConnection('nobody'), undefined);
        }),
      );

      test(
        'putConnection stores the record, will and user included; getConnection returns it',
        withStore(async (store) => {
          const record = connection('c1', { will: will('last/words', 'bye'), user: 'alice' });
          await store.putConnection(record);
          assert.deepEqual(connectionFields(await store.getConnection('c1')), record);
        }),
      );

      test(
        'putConnection replaces an existing record',
        withStore(async (store) => {
          await store.putConnection(connection('c1', { will: will('w', 'x') }));
          const replacement = connection('c1', { sessionId: 's2', keepAliveSeconds: 5 });
          await store.putConnection(replacement);
          assert.deepEqual(connectionFields(await store.getConnection('c1')), replacement);
        }),
      );

      test(
        'claimConnection: true for the first CONNECT, false for a second one, which changes nothing [MQTT-3.1.0-2]',
        withStore(async (store) => {
          const first = connection('c1', { connectFrameId: 'frame-1' });
          assert.equal(await store.claimConnection(first), true);
          assert.equal(await store.claimConnection(connection('c1', { clientId: 'other' })), false);
          assert.deepEqual(connectionFields(await store.getConnection('c1')), first);
        }),
      );

      test(
        'claimConnection: false when putConnection already stored the connection',
        withStore(async (store) => {
          await store.putConnection(connection('c1'));
          assert.equal(await store.claimConnection(connection('c1')), false);
        }),
      );

      test(
        'deleteConnection removes the record; deleting an unknown connection is harmless',
        withStore(async (store) => {
          await store.putConnection(connection('c1'));
          await store.putConnection(connection('c2'));
          await store.deleteConnection('c1');
          await store.deleteConnection('never-there');
          assert.equal(await store.getConnection('c1'), undefined);
          assert.ok(await store.getConnection('c2'));
          assert.equal(await store.claimConnection(connection('c1')), true);
        }),
      );

      test(
        'touchConnection sets lastSeen and nothing else',
        withStore(async (store) => {
          const record = connection('c1', { lastSeen: 10, will: will('w', 'x') });
          await store.putConnection(record);
          await store.touchConnection('c1', 99);
          assert.deepEqual(connectionFields(await store.getConnection('c1')), { ...record, lastSeen: 99 });
        }),
      );

      test(
        'touchConnection with a deadline moves keepAliveDue with lastSeen',
        withStore(async (store) => {
          const record = connection('c1', { keepAliveDue: 5_000 });
          await store.putConnection(record);
          await store.touchConnection('c1', 2_000, 9_000);
          assert.deepEqual(connectionFields(await store.getConnection('c1')), {
            ...record,
            lastSeen: 2_000,
            keepAliveDue: 9_000,
          });
        }),
      );

      test(
        'savePublishBucket keeps the bucket on the record and changes nothing else',
        withStore(async (store) => {
          const record = connection('c1', { lastSeen: 10, will: will('w', 'x') });
          await store.putConnection(record);
          await store.savePublishBucket('c1', { tokens: 12.5, at: 1000 });
          await store.savePublishBucket('c1', { tokens: 3.25, at: 2000 });
          const stored = await store.getConnection('c1');
          assert.deepEqual(connectionFields(stored), record);
          assert.deepEqual(stored?.publishBucket, { tokens: 3.25, at: 2000 });
        }),
      );

      test(
        'connectionsDue lists the connections whose deadline has come, not the others nor keep-alive 0',
        withStore(async (store) => {
          // Enough connections to land in every partition a backend may spread them over.
          for (let i = 0; i < 40; i++) {
            await store.putConnection(connection(`due-${i}`, { keepAliveDue: 1_000 + i }));
            await store.putConnection(connection(`later-${i}`, { keepAliveDue: 5_000 + i }));
          }
          await store.putConnection(connection('no-keepalive', { keepAliveSeconds: 0 }));
          const expected = Array.from({ length: 40 }, (_, i) => `due-${i}`).sort();
          const due = await eventually(async () => (await store.connectionsDue(1_039)).sort(), expected);
          assert.deepEqual(due, expected);
          assert.deepEqual(await store.connectionsDue(999), []);
        }),
      );

      test(
        'addUserConnection counts up to max, each id once, and a takeover replaces without counting twice',
        withStore(async (store) => {
          assert.equal(await store.addUserConnection('alice', 'c1', 2), true);
          assert.equal(await store.addUserConnection('alice', 'c1', 2), true); // a retried CONNECT
          assert.equal(await store.addUserConnection('alice', 'c2', 2), true);
          assert.equal(await store.addUserConnection('alice', 'c3', 2), false);
          assert.equal(await store.addUserConnection('bob', 'c4', 2), true);
          assert.equal(await store.addUserConnection('alice', 'c5', 2, 'c2'), true);
          assert.deepEqual((await store.userConnections('alice')).sort(), ['c1', 'c2', 'c5']);
          await store.removeUserConnection('alice', 'c2');
          await store.removeUserConnection('alice', 'c2'); // a second instance noticing the same end
          await store.removeUserConnection('carol', 'c9');
          assert.deepEqual((await store.userConnections('alice')).sort(), ['c1', 'c5']);
          assert.equal(await store.addUserConnection('alice', 'c6', 2), false);
          await store.removeUserConnection('alice', 'c1');
          assert.equal(await store.addUserConnection('alice', 'c6', 2), true);
          assert.deepEqual(await store.userConnections('nobody'), []);
        }),
      );

      test(
        'connectionsDue follows a touch that moves the deadline, and forgets a deleted connection',
        withStore(async (store) => {
          await store.claimConnection(connection('moved', { keepAliveDue: 1_000 }));
          await store.claimConnection(connection('gone', { keepAliveDue: 1_000 }));
          await store.touchConnection('moved', 1_500, 8_000);
          await store.deleteConnection('gone');
          assert.deepEqual(await eventually(() => store.connectionsDue(2_000), []), []);
          assert.deepEqual(await eventually(() => store.connectionsDue(8_000), ['moved']), ['moved']);
        }),
      );

      test(
        'markSharedSubscriber sets the flag on the record and changes nothing else; a gone connection stays gone',
        withStore(async (store) => {
          const record = connection('c1', { lastSeen: 10, will: will('w', 'x') });
          await store.putConnection(record);
          assert.equal((await store.getConnection('c1'))?.sharedSubscriber, undefined);
          await store.markSharedSubscriber('c1');
          const stored = await store.getConnection('c1');
          assert.deepEqual(connectionFields(stored), record);
          assert.equal(stored?.sharedSubscriber, true);
          await store.markSharedSubscriber('gone');
          assert.equal(await store.getConnection('gone'), undefined);
        }),
      );

      test(
        'savePublishBucket of a gone connection does not bring it back',
        withStore(async (store) => {
          await store.savePublishBucket('gone', { tokens: 1, at: 1 });
          assert.equal(await store.getConnection('gone'), undefined);
        }),
      );

      test(
        'touchConnection of a gone connection does not bring it back',
        withStore(async (store) => {
          await store.touchConnection('gone', 99);
          assert.equal(await store.getConnection('gone'), undefined);
        }),
      );

      test(
        'takeWill returns the will exactly once and leaves the rest of the record [MQTT-3.1.2-10]',
        withStore(async (store) => {
          const record = connection('c1', { will: will('last/words', 'bye', 1) });
          const { will: lastWords, ...withoutWill } = record;
          await store.putConnection(record);
          assert.deepEqual(await store.takeWill('c1'), lastWords);
          assert.equal(await store.takeWill('c1'), undefined);
          assert.deepEqual(connectionFields(await store.getConnection('c1')), withoutWill);
        }),
      );

      test(
        'takeWill returns the will with its MQTT 5 properties unchanged, user property order kept [MQTT-3.3.2-18]',
        withStore(async (store) => {
          const lastWords = { ...will('last/words', 'bye', 1), properties: fullProperties };
          await store.putConnection(connection('c1', { will: lastWords }));
          assert.deepEqual(await store.takeWill('c1'), lastWords);
        }),
      );

      test(
        'takeWill: one winner among concurrent callers, so the will is published once',
        withStore(async (store) => {
          await store.putConnection(connection('c1', { will: will('w', 'x') }));
          const taken = await Promise.all(Array.from({ length: 5 }, () => store.takeWill('c1')));
          assert.equal(taken.filter((w) => w !== undefined).length, 1);
        }),
      );

      test(
        'takeWill: undefined for a connection without a will, and for an unknown one',
        withStore(async (store) => {
          const record = connection('c1');
          await store.putConnection(record);
          assert.equal(await store.takeWill('c1'), undefined);
          assert.equal(await store.takeWill('unknown'), undefined);
          assert.deepEqual(connectionFields(await store.getConnection('c1')), record);
          assert.equal(await store.getConnection('unknown'), undefined);
        }),
      );

      test(
        'scanConnections yields every connection record across its pages',
        withStore(async (store) => {
          const records = Array.from({ length: 30 }, (_, i) => connection(`c${String(i).padStart(2, '0')}`));
          for (const record of records) await store.putConnection(record);
          const seen: ConnectionRecord[] = [];
          for await (const page of store.scanConnections()) seen.push(...page.map(connectionFields));
          seen.sort((a, b) => byText(a.connectionId, b.connectionId));
          assert.deepEqual(seen, records);
        }),
      );

      test(
        'scanConnections of an empty table yields no records',
        withStore(async (store) => {
          const seen: ConnectionRecord[] = [];
          for await (const page of store.scanConnections()) seen.push(...page);
          assert.deepEqual(seen, []);
        }),
      );

      test(
        'records are copies: changing what was stored or returned does not change the store',
        withStore(async (store) => {
          const payload = bytes('bye');
          await store.putConnection(
            connection('c1', { will: { topic: 'w', payload, qos: 0, retain: false } }),
          );
          payload[0] = 0;
          const read = await store.getConnection('c1');
          assert.ok(read?.will);
          read.will.payload[1] = 0;
          (read as { lastSeen: number }).lastSeen = -1;
          const again = await store.getConnection('c1');
          assert.deepEqual(again?.will?.payload, bytes('bye'));
          assert.notEqual(again?.lastSeen, -1);
        }),
      );
    });

    describe('sessions', () => {
      test(
        'getSession: undefined for an unknown client id',
        withStore(async (store) => {
          assert.equal(await store.getSession('nobody'), undefined);
        }),
      );

      test(
        'subscribedFilters lists the client id’s filters, of every session generation, and no one else’s',
        withStore(async (store) => {
          await store.putSubscriptions([
            subscription('a', 's1', 'x/+', 1),
            subscription('a', 's0', 'y', 0),
            subscription('b', 's1', 'z', 0),
          ]);
          assert.deepEqual((await store.subscribedFilters('a')).sort(), ['x/+', 'y']);
          assert.deepEqual(await store.subscribedFilters('nobody'), []);
        }),
      );

      test(
        'replaceSession from nothing creates the session; a second creation loses',
        withStore(async (store) => {
          const first = session('a', 's1', 'c1');
          assert.equal(await store.replaceSession(first, undefined), true);
          assert.equal(await store.replaceSession(session('a', 's2', 'c2'), undefined), false);
          assert.deepEqual(sessionFields(await store.getSession('a')), first);
        }),
      );

      test(
        'replaceSession stores the owner, replaces it with the next one, and removes it when the next has none',
        withStore(async (store) => {
          const first = session('a', 's1', 'c1', { owner: 'alice' });
          await store.replaceSession(first, undefined);
          assert.deepEqual(sessionFields(await store.getSession('a')), first);
          const resumed = session('a', 's1', 'c2', { owner: 'alice' });
          assert.equal(await store.replaceSession(resumed, first), true);
          assert.equal((await store.getSessions(['a'])).get('a')?.owner, 'alice');
          const anonymous = session('a', 's2', 'c3');
          assert.equal(await store.replaceSession(anonymous, resumed), true);
          assert.deepEqual(sessionFields(await store.getSession('a')), anonymous);
        }),
      );

      test(
        'replaceSession is compare-and-set: it writes when the stored session is still `previous`',
        withStore(async (store) => {
          const first = session('a', 's1', 'c1');
          await store.replaceSession(first, undefined);
          const next = session('a', 's1', 'c2', { protocolVersion: 5 });
          assert.equal(await store.replaceSession(next, first), true);
          assert.deepEqual(sessionFields(await store.getSession('a')), next);
        }),
      );

      test(
        'replaceSession keeps the connected client’s Maximum Packet Size, and forgets it when the next one sets none',
        withStore(async (store) => {
          const first = session('a', 's1', 'c1', { protocolVersion: 5, maximumPacketSize: 1024 });
          await store.replaceSession(first, undefined);
          assert.deepEqual(sessionFields(await store.getSession('a')), first);
          const next = session('a', 's1', 'c2');
          await store.replaceSession(next, first);
          assert.deepEqual(sessionFields(await store.getSession('a')), next);
          assert.deepEqual(sessionFields((await store.getSessions(['a'])).get('a')), next);
        }),
      );

      test(
        'replaceSession loses when another CONNECT started a new session generation',
        withStore(async (store) => {
          const first = session('a', 's1', 'c1');
          await store.replaceSession(first, undefined);
          const winner = session('a', 's2', 'c2', { cleanSession: true });
          assert.equal(await store.replaceSession(winner, first), true);
          assert.equal(await store.replaceSession(session('a', 's3', 'c3'), first), false);
          assert.deepEqual(sessionFields(await store.getSession('a')), winner);
        }),
      );

      test(
        'replaceSession loses when another connection took over the same session',
        withStore(async (store) => {
          const first = session('a', 's1', 'c1');
          await store.replaceSession(first, undefined);
          const winner = session('a', 's1', 'c2');
          await store.replaceSession(winner, first);
          assert.equal(await store.replaceSession(session('a', 's1', 'c3'), first), false);
          assert.deepEqual(sessionFields(await store.getSession('a')), winner);
        }),
      );

      test(
        'replaceSession wins over a session that went offline after it was read',
        withStore(async (store) => {
          const first = session('a', 's1', 'c1');
          await store.replaceSession(first, undefined);
          await store.endSession('a', 'c1', false);
          const next = session('a', 's1', 'c2');
          assert.equal(await store.replaceSession(next, first), true);
          assert.deepEqual(sessionFields(await store.getSession('a')), next);
        }),
      );

      test(
        'replaceSession loses when `previous` names a session that no longer exists',
        withStore(async (store) => {
          assert.equal(await store.replaceSession(session('a', 's2', 'c2'), session('a', 's1', 'c1')), false);
          assert.equal(await store.getSession('a'), undefined);
        }),
      );

      test(
        'getSessions returns the sessions that exist, each once',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          await store.replaceSession(session('b', 's2', 'c2'), undefined);
          const found = await store.getSessions(['a', 'missing', 'b', 'a']);
          assert.deepEqual([...found.keys()].sort(), ['a', 'b']);
          assert.deepEqual(sessionFields(found.get('b')), session('b', 's2', 'c2'));
          assert.equal((await store.getSessions([])).size, 0);
        }),
      );

      test(
        'getSessions answers for more client ids than one batch read holds',
        withStore(async (store) => {
          const ids = Array.from({ length: 130 }, (_, i) => `client-${i}`);
          await Promise.all(
            ids.map((id) => store.replaceSession(session(id, `s-${id}`, `c-${id}`), undefined)),
          );
          const found = await store.getSessions([...ids, 'missing']);
          assert.equal(found.size, ids.length);
          assert.equal(found.get('client-129')?.sessionId, 's-client-129');
        }),
      );

      test(
        'endSession of a persistent session: true, the session stays, offline',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          assert.equal(await store.endSession('a', 'c1', false), true);
          assert.deepEqual(sessionFields(await store.getSession('a')), session('a', 's1', undefined));
        }),
      );

      test(
        'endSession with an expiry: sessionsExpired lists the session from then on, not before [MQTT-3.1.2-23]',
        withStore(async (store) => {
          const five = session('a', 's1', 'c1', { protocolVersion: 5, sessionExpirySeconds: 60 });
          await store.replaceSession(five, undefined);
          await store.replaceSession(session('b', 's2', 'c2'), undefined);
          assert.equal(await store.endSession('a', 'c1', false, 61_000), true);
          await store.endSession('b', 'c2', false);
          const stored = await store.getSession('a');
          assert.equal(stored?.sessionExpiresAt, 61_000);
          assert.equal(stored?.sessionExpirySeconds, 60);
          assert.deepEqual(await eventually(() => store.sessionsExpired(61_000), ['a']), ['a']);
          assert.deepEqual(await store.sessionsExpired(60_999), []);
          // Not expired yet: kept.
          assert.equal(await store.deleteExpiredSession('a', 60_999), false);
          assert.equal(await store.deleteExpiredSession('b', 61_000), false);
          assert.equal(await store.deleteExpiredSession('a', 61_000), true);
          assert.equal(await store.getSession('a'), undefined);
          assert.ok(await store.getSession('b'));
        }),
      );

      test(
        'replaceSession of an expiring offline session: no longer expires, leaves sessionsExpired',
        withStore(async (store) => {
          const five = session('a', 's1', 'c1', { protocolVersion: 5, sessionExpirySeconds: 60 });
          await store.replaceSession(five, undefined);
          await store.endSession('a', 'c1', false, 61_000);
          const offline = await store.getSession('a');
          assert.equal(await store.replaceSession({ ...five, connectionId: 'c2' }, offline), true);
          assert.equal((await store.getSession('a'))?.sessionExpiresAt, undefined);
          assert.deepEqual(await eventually(() => store.sessionsExpired(100_000), []), []);
          assert.equal(await store.deleteExpiredSession('a', 100_000), false);
        }),
      );

      test(
        'endSession of a clean session: true, the session is gone [MQTT-3.1.2-6]',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1', { cleanSession: true }), undefined);
          assert.equal(await store.endSession('a', 'c1', true), true);
          assert.equal(await store.getSession('a'), undefined);
        }),
      );

      test(
        'endSession: false, and no change, when another connection serves the client id',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c2'), undefined);
          assert.equal(await store.endSession('a', 'c1', true), false);
          assert.equal(await store.endSession('a', 'c1', false), false);
          assert.deepEqual(sessionFields(await store.getSession('a')), session('a', 's1', 'c2'));
        }),
      );

      test(
        'endSession: false for an offline session and for an unknown client id',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          await store.endSession('a', 'c1', false);
          assert.equal(await store.endSession('a', 'c1', false), false);
          assert.equal(await store.endSession('nobody', 'c1', true), false);
        }),
      );
    });

    describe('delayed wills', () => {
      const five = session('a', 's1', 'c1', { protocolVersion: 5, sessionExpirySeconds: 60 });
      const lastWords = { ...will('status/a', 'gone', 1), properties: fullProperties };

      test(
        'deferWill keeps the will until due: willsDue and takeDueWill give it from then on, once [MQTT-3.1.3-9]',
        withStore(async (store) => {
          await store.replaceSession(five, undefined);
          assert.equal(await store.deferWill('a', 'c1', lastWords, 5_000), true);
          await store.endSession('a', 'c1', false, 61_000);
          assert.deepEqual(await store.willsDue(4_999), []);
          assert.equal(await store.takeDueWill('a', 4_999), undefined);
          assert.deepEqual(await eventually(() => store.willsDue(5_000), ['a']), ['a']);
          const taken = await Promise.all(Array.from({ length: 3 }, () => store.takeDueWill('a', 5_000)));
          assert.deepEqual(
            taken.filter((w) => w !== undefined),
            [lastWords],
          );
          assert.deepEqual(await eventually(() => store.willsDue(10_000), []), []);
          // The session itself is untouched: offline, expiring as before.
          const { connectionId: _ended, ...offline } = five;
          assert.deepEqual(sessionFields(await store.getSession('a')), {
            ...offline,
            sessionExpiresAt: 61_000,
          });
        }),
      );

      test(
        'deferWill: false, and nothing kept, when another connection serves the client id [MQTT-3.1.3-9]',
        withStore(async (store) => {
          await store.replaceSession({ ...five, connectionId: 'c2' }, undefined);
          assert.equal(await store.deferWill('a', 'c1', lastWords, 5_000), false);
          assert.equal(await store.deferWill('nobody', 'c1', lastWords, 5_000), false);
          assert.equal(await store.takeDueWill('a', 10_000), undefined);
          assert.deepEqual(await store.willsDue(10_000), []);
        }),
      );

      test(
        'replaceSession (the client reconnects) discards the deferred will [MQTT-3.1.3-9]',
        withStore(async (store) => {
          await store.replaceSession(five, undefined);
          await store.deferWill('a', 'c1', lastWords, 5_000);
          await store.endSession('a', 'c1', false, 61_000);
          const offline = await store.getSession('a');
          assert.equal(await store.replaceSession({ ...five, connectionId: 'c2' }, offline), true);
          assert.equal(await store.takeDueWill('a', 10_000), undefined);
          assert.deepEqual(await eventually(() => store.willsDue(10_000), []), []);
        }),
      );

      test(
        'deleteExpiredSession keeps a session whose deferred will is still to be published',
        withStore(async (store) => {
          await store.replaceSession(five, undefined);
          await store.deferWill('a', 'c1', lastWords, 61_000);
          await store.endSession('a', 'c1', false, 61_000);
          assert.equal(await store.deleteExpiredSession('a', 61_000), false);
          assert.deepEqual(await store.takeDueWill('a', 61_000), lastWords);
          assert.equal(await store.deleteExpiredSession('a', 61_000), true);
        }),
      );
    });

    describe('flow control (Receive Maximum)', () => {
      const online = () => session('a', 's1', 'c1', { protocolVersion: 5, receiveMaximum: 2 });
      const held = (seq: number) => ({ seq, frame: `frame-${seq}` });

      test(
        'takeSendPlace: up to the Receive Maximum, then false; false for a connection that no longer serves [MQTT-3.3.4-9]',
        withStore(async (store) => {
          await store.replaceSession(online(), undefined);
          assert.equal(await store.takeSendPlace('a', 'c1', 2), true);
          assert.equal(await store.takeSendPlace('a', 'c1', 2), true);
          assert.equal(await store.takeSendPlace('a', 'c1', 2), false);
          assert.equal(await store.freeSendPlace('a'), false, 'nothing held');
          assert.equal(await store.takeSendPlace('a', 'old', 2), false);
          assert.equal(await store.takeSendPlace('nobody', 'c1', 2), false);
        }),
      );

      test(
        'holdPacket: only while every place is taken or others are held; held packets come back oldest first, one per free place',
        withStore(async (store) => {
          await store.replaceSession(online(), undefined);
          assert.equal(await store.holdPacket('a', 'c1', 2, held(1)), false, 'a place is free: send instead');
          await store.takeSendPlace('a', 'c1', 2);
          await store.takeSendPlace('a', 'c1', 2);
          assert.equal(await store.holdPacket('a', 'c1', 2, held(4)), true);
          assert.equal(await store.holdPacket('a', 'c1', 2, held(3)), true);
          assert.equal(await store.holdPacket('a', 'c1', 2, held(3)), true, 'a retry counts as held');
          assert.equal(await store.claimHeldPacket('a', 2), undefined, 'no place free');
          assert.equal(await store.freeSendPlace('a'), true, 'packets are held');
          // A free place, but packets wait: a new one may not overtake them.
          assert.equal(await store.takeSendPlace('a', 'c1', 2), false);
          assert.deepEqual(await store.claimHeldPacket('a', 2), held(3));
          assert.equal(await store.claimHeldPacket('a', 2), undefined, 'the place is taken again');
          await store.heldPacketSent('a');
          assert.equal(await store.freeSendPlace('a'), true);
          assert.deepEqual(await store.claimHeldPacket('a', 2), held(4));
          await store.heldPacketSent('a');
          assert.equal(await store.claimHeldPacket('a', 2), undefined, 'none held');
          assert.equal(await store.freeSendPlace('a'), false);
          assert.equal(await store.takeSendPlace('a', 'c1', 2), true, 'nothing held: straight out again');
        }),
      );

      test(
        'a held packet stands in front of new ones until heldPacketSent',
        withStore(async (store) => {
          await store.replaceSession(online(), undefined);
          await store.takeSendPlace('a', 'c1', 2);
          await store.takeSendPlace('a', 'c1', 2);
          await store.holdPacket('a', 'c1', 2, held(3));
          await store.freeSendPlace('a');
          await store.freeSendPlace('a');
          assert.deepEqual(await store.claimHeldPacket('a', 2), held(3));
          assert.equal(await store.takeSendPlace('a', 'c1', 2), false, 'still being posted');
          assert.equal(await store.holdPacket('a', 'c1', 2, held(4)), true);
          await store.heldPacketSent('a');
          assert.deepEqual(await store.claimHeldPacket('a', 2), held(4));
        }),
      );

      test(
        'freeSendPlace never counts below none; resetFlow forgets held packets and sets the places taken',
        withStore(async (store) => {
          await store.replaceSession(online(), undefined);
          assert.equal(await store.freeSendPlace('a'), false);
          assert.equal(await store.takeSendPlace('a', 'c1', 1), true);
          assert.equal(await store.holdPacket('a', 'c1', 1, held(2)), true);
          await store.resetFlow('a', 1);
          assert.equal(await store.freeSendPlace('a'), false, 'nothing held any more');
          assert.equal(await store.claimHeldPacket('a', 1), undefined);
          assert.equal(await store.takeSendPlace('a', 'c1', 1), true);
          assert.equal(await store.takeSendPlace('a', 'c1', 1), false);
        }),
      );

      test(
        'concurrent takeSendPlace calls take no more places than the Receive Maximum [MQTT-3.3.4-9]',
        withStore(async (store) => {
          await store.replaceSession(online(), undefined);
          const taken = await Promise.all(Array.from({ length: 6 }, () => store.takeSendPlace('a', 'c1', 2)));
          assert.equal(taken.filter(Boolean).length, 2);
        }),
      );

      test(
        'replaceSession keeps the Receive Maximum it is given and drops one the next connection does not send',
        withStore(async (store) => {
          await store.replaceSession(online(), undefined);
          assert.equal((await store.getSession('a'))?.receiveMaximum, 2);
          const first = await store.getSession('a');
          const next = session('a', 's1', 'c2', { protocolVersion: 5 });
          assert.equal(await store.replaceSession(next, first), true);
          assert.equal((await store.getSession('a'))?.receiveMaximum, undefined);
        }),
      );
    });

    describe('subscriptions', () => {
      test(
        'subscriptionsMatching finds a subscription by its exact topic',
        withStore(async (store) => {
          const s = subscription('a', 's1', 'home/kitchen/temp', 1);
          await store.putSubscriptions([s]);
          assert.deepEqual(await store.subscriptionsMatching('home/kitchen/temp'), [s]);
          assert.deepEqual(await store.subscriptionsMatching('home/kitchen'), []);
          assert.deepEqual(await store.subscriptionsMatching('home/kitchen/temp/x'), []);
        }),
      );

      test(
        'subscriptionsMatchingEach gives each topic what subscriptionsMatching gives it, shared anchors included',
        withStore(async (store) => {
          await store.putSubscriptions([
            subscription('a', 's', 'dev/+/t', 1),
            subscription('b', 's', '#', 0),
            subscription('c', 's', 'dev/1/t', 2),
            subscription('d', 's', 'dev/2/#', 0),
            subscription('e', 's', '+/+/t', 1),
          ]);
          const topics = ['dev/1/t', 'dev/2/t', 'dev/2', 'other', '$SYS/x'];
          const each = await store.subscriptionsMatchingEach(topics);
          assert.deepEqual([...each.keys()], topics);
          for (const topic of topics)
            assert.deepEqual(
              sortByClient(each.get(topic) ?? []),
              sortByClient(await store.subscriptionsMatching(topic)),
              topic,
            );
          assert.deepEqual(clientsOf(each.get('dev/1/t') ?? []), ['a', 'b', 'c', 'e']);
          assert.deepEqual(clientsOf(each.get('dev/2/t') ?? []), ['a', 'b', 'd', 'e']);
          // [MQTT-4.7.2-1] a filter opening with a wildcard matches no `$` topic.
          assert.deepEqual(each.get('$SYS/x'), []);
          assert.deepEqual(await store.subscriptionsMatchingEach([]), new Map());
        }),
      );

      test(
        'subscriptionsMatching applies wildcards, a parent level for # included (§4.7.1)',
        withStore(async (store) => {
          await store.putSubscriptions([
            subscription('a', 's', 'sport/#', 0),
            subscription('b', 's', 'sport/+/player1', 1),
            subscription('c', 's', '+/tennis/#', 2),
            subscription('d', 's', '#', 0),
            subscription('e', 's', 'sport/tennis', 0),
            subscription('f', 's', 'other/#', 0),
          ]);
          assert.deepEqual(clientsOf(await store.subscriptionsMatching('sport/tennis/player1')), [
            'a',
            'b',
            'c',
            'd',
          ]);
          assert.deepEqual(clientsOf(await store.subscriptionsMatching('sport')), ['a', 'd']);
          assert.deepEqual(clientsOf(await store.subscriptionsMatching('sport/tennis')), [
            'a',
            'c',
            'd',
            'e',
          ]);
        }),
      );

      test(
        'a Shared Subscription matches by its topic filter; each member of each group is its own subscription (§4.8.2)',
        withStore(async (store) => {
          await store.putSubscriptions([
            subscription('a', 's', '$share/g/home/+/temp', 1),
            subscription('b', 's', '$share/g/home/+/temp', 2),
            subscription('a', 's', '$share/h/home/+/temp', 0),
            subscription('a', 's', 'home/+/temp', 1),
            subscription('c', 's', '$share/g/#', 0),
            subscription('d', 's', '$share/g/other', 0),
          ]);
          const matching = await store.subscriptionsMatching('home/kitchen/temp');
          assert.deepEqual(matching.map((s) => `${s.clientId} ${s.filter} ${s.qos}`).sort(), [
            'a $share/g/home/+/temp 1',
            'a $share/h/home/+/temp 0',
            'a home/+/temp 1',
            'b $share/g/home/+/temp 2',
            'c $share/g/# 0',
          ]);
          // [MQTT-4.7.2-1] holds for the filter inside the share too.
          assert.deepEqual(await store.subscriptionsMatching('$SYS/x'), []);
          await store.deleteSubscriptions('a', ['$share/g/home/+/temp']);
          assert.deepEqual(
            (await store.subscriptionsMatching('home/kitchen/temp'))
              .map((s) => `${s.clientId} ${s.filter}`)
              .sort(),
            ['a $share/h/home/+/temp', 'a home/+/temp', 'b $share/g/home/+/temp', 'c $share/g/#'],
          );
          assert.deepEqual((await store.subscribedFilters('a')).sort(), [
            '$share/h/home/+/temp',
            'home/+/temp',
          ]);
        }),
      );

      test(
        'subscriptionsMatching: filters starting with a wildcard do not match $ topics [MQTT-4.7.2-1]',
        withStore(async (store) => {
          await store.putSubscriptions([
            subscription('a', 's', '#', 0),
            subscription('b', 's', '+/monitor/Clients', 0),
            subscription('c', 's', '$SYS/#', 0),
            subscription('d', 's', '$SYS/monitor/+', 0),
          ]);
          assert.deepEqual(clientsOf(await store.subscriptionsMatching('$SYS/monitor/Clients')), ['c', 'd']);
        }),
      );

      test(
        'subscriptionsMatching handles empty topic levels',
        withStore(async (store) => {
          await store.putSubscriptions([
            subscription('a', 's', '/finance', 0),
            subscription('b', 's', '+/+', 0),
            subscription('c', 's', '/+', 0),
            subscription('d', 's', 'finance', 0),
            subscription('e', 's', 'a//b', 0),
          ]);
          assert.deepEqual(clientsOf(await store.subscriptionsMatching('/finance')), ['a', 'b', 'c']);
          assert.deepEqual(clientsOf(await store.subscriptionsMatching('a//b')), ['e']);
        }),
      );

      test(
        'putSubscriptions keeps the MQTT 5 options; a re-subscription replaces them and keeps subscribedAt',
        withStore(async (store) => {
          const withOptions = {
            ...subscription('a', 's1', 'opt/+', 1),
            noLocal: true,
            retainAsPublished: true,
            subscriptionIdentifier: 268_435_455,
          };
          await store.putSubscriptions([withOptions]);
          assert.deepEqual(await store.subscriptionsMatching('opt/x'), [withOptions]);
          await store.putSubscriptions([
            { ...subscription('a', 's1', 'opt/+', 2, 5_000), subscriptionIdentifier: 7 },
          ]);
          assert.deepEqual(await store.subscriptionsMatching('opt/x'), [
            { ...subscription('a', 's1', 'opt/+', 2), subscriptionIdentifier: 7 },
          ]);
          await store.putSubscriptions([subscription('a', 's1', 'opt/+', 0, 5_000)]);
          assert.deepEqual(await store.subscriptionsMatching('opt/x'), [subscription('a', 's1', 'opt/+', 0)]);
        }),
      );

      test(
        'putSubscriptions returns the filters new to their session: not a re-subscription, yes over an older session [MQTT-3.3.1-10]',
        withStore(async (store) => {
          assert.deepEqual(
            (
              await store.putSubscriptions([subscription('a', 's1', 'x', 0), subscription('a', 's1', 'y', 0)])
            ).sort(),
            ['x', 'y'],
          );
          assert.deepEqual(
            await store.putSubscriptions([subscription('a', 's1', 'x', 1), subscription('a', 's1', 'z', 0)]),
            ['z'],
          );
          assert.deepEqual(await store.putSubscriptions([subscription('a', 's2', 'x', 1)]), ['x']);
          assert.deepEqual(await store.putSubscriptions([]), []);
        }),
      );

      test(
        'subscriptionsMatching returns one record per client for a shared filter, each with its QoS',
        withStore(async (store) => {
          await store.putSubscriptions([
            subscription('a', 's1', 't/+', 1),
            subscription('b', 's2', 't/+', 2),
          ]);
          assert.deepEqual(sortByClient(await store.subscriptionsMatching('t/x')), [
            subscription('a', 's1', 't/+', 1),
            subscription('b', 's2', 't/+', 2),
          ]);
        }),
      );

      test(
        'subscriptionsMatching returns subscriptions of every session generation, each with its session id',
        withStore(async (store) => {
          await store.putSubscriptions([subscription('a', 'old', 'x/y', 1)]);
          await store.putSubscriptions([subscription('a', 'new', 'x/+', 2)]);
          assert.deepEqual(sortByFilter(await store.subscriptionsMatching('x/y')), [
            subscription('a', 'new', 'x/+', 2),
            subscription('a', 'old', 'x/y', 1),
          ]);
        }),
      );

      test(
        'putSubscriptions in the same session replaces the QoS and keeps the first subscription time [MQTT-3.8.4-3]',
        withStore(async (store) => {
          await store.putSubscriptions([subscription('a', 's1', 't', 0, 100)]);
          await store.putSubscriptions([subscription('a', 's1', 't', 2, 200)]);
          assert.deepEqual(await store.subscriptionsMatching('t'), [subscription('a', 's1', 't', 2, 100)]);
        }),
      );

      test(
        'putSubscriptions from a new session replaces an older session leftover, time included',
        withStore(async (store) => {
          await store.putSubscriptions([subscription('a', 's1', 't', 0, 100)]);
          await store.putSubscriptions([subscription('a', 's2', 't', 1, 200)]);
          assert.deepEqual(await store.subscriptionsMatching('t'), [subscription('a', 's2', 't', 1, 200)]);
        }),
      );

      test(
        "putSubscriptions stamps the store's clock when the subscription carries no time",
        withStore(async (store, clock) => {
          clock.time = 4242;
          const { subscribedAt: _, ...untimed } = subscription('a', 's1', 't', 1);
          await store.putSubscriptions([untimed]);
          assert.deepEqual(await store.subscriptionsMatching('t'), [subscription('a', 's1', 't', 1, 4242)]);
        }),
      );

      test(
        'deleteSubscriptions removes the named filters of that client only',
        withStore(async (store) => {
          await store.putSubscriptions([
            subscription('a', 's', 't/1', 0),
            subscription('a', 's', 't/+', 0),
            subscription('b', 's', 't/1', 0),
          ]);
          await store.deleteSubscriptions('a', ['t/1', 'not/subscribed']);
          assert.deepEqual(sortByClient(await store.subscriptionsMatching('t/1')), [
            subscription('a', 's', 't/+', 0),
            subscription('b', 's', 't/1', 0),
          ]);
        }),
      );

      test(
        'deleteStaleSubscriptions keeps the current session and the other clients, removes the rest [MQTT-3.1.2-6]',
        withStore(async (store) => {
          await store.putSubscriptions([
            subscription('a', 'old', 'x/1', 0),
            subscription('a', 'older', 'x/2', 0),
            subscription('a', 'current', 'x/3', 0),
            subscription('b', 'old', 'x/4', 0),
          ]);
          await store.deleteStaleSubscriptions('a', 'current');
          assert.deepEqual(clientsAndFilters(await subscriptionsUnder(store, 'x')), ['a x/3', 'b x/4']);
        }),
      );

      test(
        'deleteStaleSubscriptions without a session to keep removes every subscription of the client',
        withStore(async (store) => {
          await store.putSubscriptions([
            subscription('a', 's1', 'x/1', 0),
            subscription('a', 's2', 'x/2', 0),
            subscription('b', 's1', 'x/1', 0),
          ]);
          await store.deleteStaleSubscriptions('a');
          assert.deepEqual(clientsAndFilters(await subscriptionsUnder(store, 'x')), ['b x/1']);
        }),
      );
    });

    describe('messages and inbound QoS 2', () => {
      test(
        'putMessage stores a message, empty payload included, without claiming a packet id',
        withStore(async (store) => {
          await store.putMessage(message('pub', 'm1', 'no/payload', ''));
          await store.putMessage(message('pub', 'm2', 't', 'x'));
          assert.equal(await store.putQoS2Message(message('pub', 'm3', 't', 'y'), 1), true);
        }),
      );

      test(
        'putQoS2Message: false while the packet id awaits PUBREL, true again once released [MQTT-4.3.3-2]',
        withStore(async (store) => {
          assert.equal(await store.putQoS2Message(message('pub', 'm1', 't', 'x'), 7), true);
          assert.equal(await store.putQoS2Message(message('pub', 'm2', 't', 'x'), 7), false);
          assert.equal(await store.putQoS2Message(message('pub', 'm3', 't', 'x'), 8), true);
          await store.releaseInboundPacketId('pub', 7);
          assert.equal(await store.putQoS2Message(message('pub', 'm4', 't', 'x'), 7), true);
        }),
      );

      test(
        'putQoS2Message: packet ids are per publisher',
        withStore(async (store) => {
          assert.equal(await store.putQoS2Message(message('p1', 'm1', 't', 'x'), 7), true);
          assert.equal(await store.putQoS2Message(message('p2', 'm2', 't', 'x'), 7), true);
          await store.releaseInboundPacketId('p2', 7);
          assert.equal(await store.putQoS2Message(message('p1', 'm3', 't', 'x'), 7), false);
        }),
      );

      test(
        'releaseInboundPacketId of a free packet id is harmless',
        withStore(async (store) => {
          await store.releaseInboundPacketId('pub', 9);
          assert.equal(await store.putQoS2Message(message('pub', 'm1', 't', 'x'), 9), true);
        }),
      );

      test(
        'deleteDeliveries frees the inbound packet ids of that client only',
        withStore(async (store) => {
          await store.putQoS2Message(message('p1', 'm1', 't', 'x'), 7);
          await store.putQoS2Message(message('p2', 'm2', 't', 'x'), 7);
          await store.deleteDeliveries('p1');
          assert.equal(await store.putQoS2Message(message('p1', 'm3', 't', 'x'), 7), true);
          assert.equal(await store.putQoS2Message(message('p2', 'm4', 't', 'x'), 7), false);
        }),
      );
    });

    describe('inbound QoS 2 against the Receive Maximum', () => {
      const publisher = () => session('pub', 's1', 'c1', { protocolVersion: 5 });

      test(
        "putQoS2Message with a Receive Maximum: 'exceeded' past it, nothing stored; a PUBREL frees a place [MQTT-3.3.4-8]",
        withStore(async (store) => {
          await store.replaceSession(publisher(), undefined);
          assert.equal(await store.putQoS2Message(message('pub', 'm1', 't', 'x'), 1, 2), true);
          assert.equal(await store.putQoS2Message(message('pub', 'm2', 't', 'x'), 2, 2), true);
          assert.equal(await store.putQoS2Message(message('pub', 'm2', 't', 'x'), 2, 2), false, 'a resend');
          assert.equal(await store.putQoS2Message(message('pub', 'm3', 't', 'x'), 3, 2), 'exceeded');
          await store.releaseInboundPacketId('pub', 3, true); // never stored: changes nothing
          assert.equal(await store.putQoS2Message(message('pub', 'm3', 't', 'x'), 3, 2), 'exceeded');
          await store.releaseInboundPacketId('pub', 1, true);
          await store.releaseInboundPacketId('pub', 1, true); // repeated: counted once
          assert.equal(await store.putQoS2Message(message('pub', 'm3', 't', 'x'), 3, 2), true);
          assert.equal(await store.putQoS2Message(message('pub', 'm4', 't', 'x'), 4, 2), 'exceeded');
        }),
      );

      test(
        'deleteDeliveries forgets the count of inbound QoS 2 with the packet ids',
        withStore(async (store) => {
          await store.replaceSession(publisher(), undefined);
          assert.equal(await store.putQoS2Message(message('pub', 'm1', 't', 'x'), 1, 1), true);
          await store.deleteDeliveries('pub');
          assert.equal(await store.putQoS2Message(message('pub', 'm2', 't', 'x'), 1, 1), true);
        }),
      );
    });

    describe('packet ids and outbound QoS 2', () => {
      test(
        'reservePacketId counts up from 1 per client id [MQTT-2.3.1-1]',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          await store.replaceSession(session('b', 's1', 'c2'), undefined);
          assert.deepEqual(await store.reservePacketId('a'), { packetId: 1, seq: 1 });
          assert.deepEqual(await store.reservePacketId('a'), { packetId: 2, seq: 2 });
          assert.deepEqual(await store.reservePacketId('b'), { packetId: 1, seq: 1 });
        }),
      );

      test(
        'reservePacketId: concurrent reservations get distinct packet ids',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const ids = await Promise.all(Array.from({ length: 10 }, () => store.reservePacketId('a')));
          assert.deepEqual(
            ids.map((id) => id.packetId).sort((x, y) => x - y),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
          );
        }),
      );

      test(
        'reservePacketIds: one range of consecutive ids, wrapping at 65535, disjoint from others [MQTT-2.2.1-3]',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          await store.reservePacketId('a');
          assert.deepEqual(await store.reservePacketIds('a', 3), [
            { packetId: 2, seq: 2 },
            { packetId: 3, seq: 3 },
            { packetId: 4, seq: 4 },
          ]);
          const ranges = await Promise.all([store.reservePacketIds('a', 5), store.reservePacketIds('a', 5)]);
          const ids = ranges.flat().map((id) => id.packetId);
          assert.equal(new Set(ids).size, 10);
          assert.deepEqual(await store.reservePacketId('a'), { packetId: 15, seq: 15 });
          const wrapping = await store.reservePacketIds('a', 65_530);
          assert.deepEqual(wrapping.at(-1), { packetId: 10, seq: 65_545 });
          await assert.rejects(store.reservePacketIds('nobody', 2));
        }),
      );

      test(
        'reservePacketId rejects for a client id without a session',
        withStore(async (store) => {
          await assert.rejects(store.reservePacketId('nobody'));
        }),
      );

      test(
        'reservePacketId: the counter survives a new session generation, not a deleted session',
        withStore(async (store) => {
          const first = session('a', 's1', 'c1', { cleanSession: true });
          await store.replaceSession(first, undefined);
          await store.reservePacketId('a');
          const second = session('a', 's2', 'c2', { cleanSession: true });
          await store.replaceSession(second, first);
          assert.deepEqual(await store.reservePacketId('a'), { packetId: 2, seq: 2 });
          await store.endSession('a', 'c2', true);
          await store.replaceSession(session('a', 's3', 'c3'), undefined);
          assert.deepEqual(await store.reservePacketId('a'), { packetId: 1, seq: 1 });
        }),
      );

      test(
        'claimQoS2Delivery: the same packet id on every retry of one message, distinct ids for distinct messages',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const first = await store.claimQoS2Delivery('a', 'pub#m1');
          assert.deepEqual(first, { packetId: 1, seq: 1, first: true, received: false });
          const retry = await store.claimQoS2Delivery('a', 'pub#m1');
          assert.deepEqual(retry, { ...first, first: false });
          const other = await store.claimQoS2Delivery('a', 'pub#m2');
          assert.equal(other.first, true);
          assert.notEqual(other.packetId, first.packetId);
          assert.ok(other.seq > first.seq);
          assert.ok((await store.reservePacketId('a')).seq > other.seq);
        }),
      );

      test(
        'claimQoS2Delivery: markers are per client id',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          await store.replaceSession(session('b', 's1', 'c2'), undefined);
          await store.claimQoS2Delivery('a', 'pub#m1');
          assert.equal((await store.claimQoS2Delivery('b', 'pub#m1')).first, true);
        }),
      );

      test(
        'markQoS2Received: once PUBREC came, a retry learns the receiver has the message [MQTT-4.3.3-1]',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const first = await store.claimQoS2Delivery('a', 'pub#m1');
          const other = await store.claimQoS2Delivery('a', 'pub#m2');
          await store.markQoS2Received('a', first.packetId);
          await store.markQoS2Received('a', 999); // no delivery has it: nothing happens
          assert.deepEqual(await store.claimQoS2Delivery('a', 'pub#m1'), {
            ...first,
            first: false,
            received: true,
          });
          assert.equal((await store.claimQoS2Delivery('a', 'pub#m2')).received, false);
          assert.equal(other.first, true);
        }),
      );

      test(
        'deleteDeliveries forgets the QoS 2 markers: the message is a first delivery again',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const first = await store.claimQoS2Delivery('a', 'pub#m1');
          await store.markQoS2Received('a', first.packetId);
          await store.deleteDeliveries('a');
          const again = await store.claimQoS2Delivery('a', 'pub#m1');
          assert.equal(again.first, true);
          assert.equal(again.received, false);
          assert.notEqual(again.packetId, first.packetId);
        }),
      );
    });

    describe('outbound messages', () => {
      test(
        'putOutbound keeps a message’s MQTT 5 properties and publication time, for its expiry [MQTT-3.3.2-5]',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const m = outbound(1, 1, 'p', { properties: fullProperties, publishedAt: 5_000 });
          const plain = outbound(2, 2, 'q');
          assert.equal(await store.putOutbound('a', m, 10), true);
          assert.equal(await store.putOutbound('a', plain, 10), true);
          assert.deepEqual(await store.outboundMessages('a'), [m, plain]);
        }),
      );

      test(
        'outboundMessages: empty for a client id with nothing queued',
        withStore(async (store) => {
          assert.deepEqual(await store.outboundMessages('nobody'), []);
        }),
      );

      test(
        'putOutbound keeps messages; outboundMessages returns them in queuing order across a packet id wrap',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const queued = [
            outbound(65_534, 65_534, 'first'),
            outbound(65_535, 65_535, 'second'),
            outbound(1, 65_536, 'third'),
          ];
          for (const m of [queued[2], queued[0], queued[1]])
            assert.equal(await store.putOutbound('a', m, 10), true);
          assert.deepEqual(await store.outboundMessages('a'), queued);
        }),
      );

      test(
        'putOutbound keeps the Shared Subscription a message came through and its key, to hand it on (§4.8.2)',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const m = outbound(4, 4, 'shared', { share: '$share/g/t', shareKey: 'pub#m-1' });
          assert.equal(await store.putOutbound('a', m, 10), true);
          assert.deepEqual(await store.outboundMessages('a'), [m]);
        }),
      );

      test(
        'keepInFlight keeps a copy outside the queue’s bound; forgetInFlight removes it, harmlessly twice',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const first = outbound(7, 7, 'in flight', { share: '$share/g/t', shareKey: 'pub#m-7', sent: true });
          await store.keepInFlight('a', first);
          // A packet id already kept stays as it was (a retried fan-out).
          await store.keepInFlight('a', { ...first, topic: 'other' });
          assert.deepEqual(await store.outboundMessages('a'), [first]);
          // Not counted: the queue's bound of 1 still has its place.
          assert.equal(await store.putOutbound('a', outbound(8, 8, 'queued'), 1), true);
          await store.forgetInFlight('a', 7);
          await store.forgetInFlight('a', 7);
          assert.deepEqual(
            (await store.outboundMessages('a')).map((m) => m.packetId),
            [8],
          );
          assert.equal(await store.putOutbound('a', outbound(9, 9, 'over'), 1), false);
          await store.keepInFlight('a', outbound(10, 10, 'x'));
          await store.deleteDeliveries('a');
          assert.deepEqual(await store.outboundMessages('a'), []);
        }),
      );

      test(
        'putOutbound keeps the subscription identifiers a message is resent with [MQTT-3.3.4-3]',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const m = outbound(3, 3, 'ids', { subscriptionIdentifiers: [4, 268_435_455] });
          assert.equal(await store.putOutbound('a', m, 10), true);
          assert.deepEqual(await store.outboundMessages('a'), [m]);
        }),
      );

      test(
        'putOutbound of a packet id already queued: true, the first copy stays (a retried fan-out)',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const original = outbound(1, 1, 'original');
          assert.equal(await store.putOutbound('a', original, 1), true);
          assert.equal(await store.putOutbound('a', outbound(1, 1, 'again', { sent: true }), 1), true);
          assert.deepEqual(await store.outboundMessages('a'), [original]);
        }),
      );

      test(
        'putOutbound: false when the queue is full; an acknowledgement frees a place',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          assert.equal(await store.putOutbound('a', outbound(1, 1, 'm1'), 2), true);
          assert.equal(await store.putOutbound('a', outbound(2, 2, 'm2'), 2), true);
          assert.equal(await store.putOutbound('a', outbound(3, 3, 'm3'), 2), false);
          assert.deepEqual(
            (await store.outboundMessages('a')).map((m) => m.packetId),
            [1, 2],
          );
          await store.deleteOutbound('a', 1);
          assert.equal(await store.putOutbound('a', outbound(3, 3, 'm3'), 2), true);
          assert.deepEqual(
            (await store.outboundMessages('a')).map((m) => m.packetId),
            [2, 3],
          );
        }),
      );

      test(
        'putOutbound: false once the session is gone, and the client id can still connect afterwards',
        withStore(async (store) => {
          const previous = session('a', 's1', 'c1');
          await store.replaceSession(previous, undefined);
          await store.endSession('a', 'c1', true); // a clean session ends while the fan-out still holds it
          assert.equal(await store.putOutbound('a', outbound(1, 1, 'late'), 10), false);
          assert.deepEqual(await store.outboundMessages('a'), []);
          assert.equal(await store.getSession('a'), undefined);
          assert.equal(await store.replaceSession(session('a', 's2', 'c2'), undefined), true);
        }),
      );

      test(
        'deleteOutbound: a repeated acknowledgement frees no second place',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          await store.putOutbound('a', outbound(1, 1, 'm1'), 2);
          await store.putOutbound('a', outbound(2, 2, 'm2'), 2);
          await store.deleteOutbound('a', 1);
          await store.deleteOutbound('a', 1);
          await store.deleteOutbound('a', 77);
          assert.equal(await store.putOutbound('a', outbound(3, 3, 'm3'), 2), true);
          assert.equal(await store.putOutbound('a', outbound(4, 4, 'm4'), 2), false);
        }),
      );

      test(
        'the queue bound is per client id',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          await store.replaceSession(session('b', 's1', 'c2'), undefined);
          assert.equal(await store.putOutbound('a', outbound(1, 1, 'm1'), 1), true);
          assert.equal(await store.putOutbound('b', outbound(1, 1, 'm1'), 1), true);
          assert.equal(await store.putOutbound('a', outbound(2, 2, 'm2'), 1), false);
        }),
      );

      test(
        'markOutboundReleased: PUBREL is what to resend from now on [MQTT-4.4.0-1]; unknown packet ids stay unknown',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const m = outbound(5, 5, 'm', { qos: 2, sent: true });
          await store.putOutbound('a', m, 10);
          await store.markOutboundReleased('a', 5);
          await store.markOutboundReleased('a', 6);
          assert.deepEqual(await store.outboundMessages('a'), [{ ...m, released: true }]);
        }),
      );

      test(
        'markOutboundUnsent: a copy whose post found no connection is queued as never sent [MQTT-3.3.2-5]; unknown packet ids stay unknown',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const m = outbound(5, 5, 'm', { sent: true });
          await store.putOutbound('a', m, 10);
          await store.putOutbound('a', outbound(6, 6, 'n', { sent: true }), 10);
          await store.markOutboundUnsent('a', 5);
          await store.markOutboundUnsent('a', 7);
          assert.deepEqual(await store.outboundMessages('a'), [
            { ...m, sent: false },
            outbound(6, 6, 'n', { sent: true }),
          ]);
        }),
      );

      test(
        'deleteDeliveries forgets the queued messages of that client only',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          await store.replaceSession(session('b', 's1', 'c2'), undefined);
          await store.putOutbound('a', outbound(1, 1, 'm1'), 10);
          await store.putOutbound('b', outbound(1, 1, 'm1'), 10);
          await store.deleteDeliveries('a');
          assert.deepEqual(await store.outboundMessages('a'), []);
          assert.deepEqual(await store.outboundMessages('b'), [outbound(1, 1, 'm1')]);
        }),
      );

      test(
        'outbound messages are copies',
        withStore(async (store) => {
          await store.replaceSession(session('a', 's1', 'c1'), undefined);
          const m = outbound(1, 1, 'abc');
          await store.putOutbound('a', m, 10);
          m.payload[0] = 0;
          const [read] = await store.outboundMessages('a');
          read.payload[1] = 0;
          assert.deepEqual((await store.outboundMessages('a'))[0].payload, bytes('abc'));
        }),
      );
    });

    topicAliasConformance(withStore);

    describe('authentication exchanges', () => {
      test(
        'putAuthExchange stores; getAuthExchange reads it back until it expires; deleteAuthExchange forgets it',
        withStore(async (store, clock) => {
          const exchange = {
            connectionId: 'c1',
            method: 'SCRAM-SHA-512',
            state: '{"user":"alice"}',
            connect: bytes('connect packet'),
            expiresAt: clock.time + 60_000,
          };
          assert.equal(await store.getAuthExchange('c1', clock.time), undefined);
          await store.putAuthExchange(exchange);
          assert.deepEqual(await store.getAuthExchange('c1', clock.time), exchange);
          assert.equal(await store.getAuthExchange('c1', clock.time + 60_000), undefined);
          const next = {
            connectionId: 'c1',
            method: 'SCRAM-SHA-512',
            state: 'two',
            expiresAt: clock.time + 1,
          };
          await store.putAuthExchange(next);
          assert.deepEqual(await store.getAuthExchange('c1', clock.time), next);
          await store.deleteAuthExchange('c1');
          await store.deleteAuthExchange('c1');
          assert.equal(await store.getAuthExchange('c1', clock.time), undefined);
        }),
      );
    });

    describe('broker figures ($SYS/)', () => {
      test(
        'addBrokerCounters adds to the running counts; brokerFigures reads them, 0 before any',
        withStore(async (store) => {
          assert.deepEqual(await store.brokerFigures(), {
            messagesReceived: 0,
            messagesSent: 0,
            subscriptions: 0,
            retainedMessages: 0,
          });
          await store.addBrokerCounters({ messagesReceived: 3, messagesSent: 5 });
          await Promise.all([store.addBrokerCounters({ messagesSent: 2 }), store.addBrokerCounters({})]);
          const figures = await store.brokerFigures();
          assert.equal(figures.messagesReceived, 3);
          assert.equal(figures.messagesSent, 7);
        }),
      );

      test(
        'brokerFigures counts stored subscriptions and retained messages',
        withStore(async (store) => {
          await store.putSubscriptions([
            { clientId: 'a', sessionId: 's1', filter: 'x/#', qos: 1 },
            { clientId: 'b', sessionId: 's2', filter: 'x/#', qos: 0 },
          ]);
          await store.putRetained(retained('home/temp', '21'));
          const figures = await store.brokerFigures();
          assert.equal(figures.subscriptions, 2);
          assert.equal(figures.retainedMessages, 1);
        }),
      );
    });

    describe('retained messages', () => {
      test(
        'putRetained stores; retainedMatching returns it with the retain flag set',
        withStore(async (store) => {
          await store.putRetained(retained('home/temp', '21', 1, 100));
          assert.deepEqual(await store.retainedMatching('home/temp'), [retained('home/temp', '21', 1, 100)]);
          assert.deepEqual(await store.retainedMatching('home/temp/x'), []);
          assert.deepEqual(await store.retainedMatching('home'), []);
        }),
      );

      test(
        'putRetained keeps the MQTT 5 properties; a replacement without properties has none',
        withStore(async (store) => {
          const withProps = { ...retained('home/temp', '21', 1, 100), properties: fullProperties };
          await store.putRetained(withProps);
          assert.deepEqual(await store.retainedMatching('home/#'), [withProps]);
          await store.putRetained(retained('home/temp', '22', 1, 200));
          assert.deepEqual(await store.retainedMatching('home/#'), [retained('home/temp', '22', 1, 200)]);
        }),
      );

      test(
        'putRetained replaces the retained message of the topic [MQTT-3.3.1-5]',
        withStore(async (store) => {
          await store.putRetained(retained('home/temp', '21', 1, 100));
          await store.putRetained(retained('home/temp', '22', 0, 200));
          assert.deepEqual(await store.retainedMatching('home/temp'), [retained('home/temp', '22', 0, 200)]);
        }),
      );

      test(
        'putRetained with an empty payload clears the topic [MQTT-3.3.1-10]',
        withStore(async (store) => {
          await store.putRetained(retained('home/temp', '21', 1, 100));
          await store.putRetained(retained('home/hum', '40', 1, 100));
          await store.putRetained(retained('home/temp', '', 0, 200));
          await store.putRetained(retained('never/retained', '', 0, 200));
          assert.deepEqual(await store.retainedMatching('home/#'), [retained('home/hum', '40', 1, 100)]);
          assert.deepEqual(await store.retainedMatching('never/retained'), []);
        }),
      );

      test(
        'retainedMatching applies wildcards within a first level, parent level for # included',
        withStore(async (store) => {
          for (const topic of ['a', 'a/b', 'a/b/c', 'a/x/c', 'b/b'])
            await store.putRetained(retained(topic, topic));
          assert.deepEqual(topicsOf(await store.retainedMatching('a/#')), ['a', 'a/b', 'a/b/c', 'a/x/c']);
          assert.deepEqual(topicsOf(await store.retainedMatching('a/+/c')), ['a/b/c', 'a/x/c']);
          assert.deepEqual(topicsOf(await store.retainedMatching('a/+')), ['a/b']);
        }),
      );

      test(
        'retainedMatching: filters starting with a wildcard read every topic, $ topics excepted [MQTT-4.7.2-1]',
        withStore(async (store) => {
          for (const topic of ['a/b', 'b/b', 'c', '/b', '$SYS/b'])
            await store.putRetained(retained(topic, topic));
          assert.deepEqual(topicsOf(await store.retainedMatching('#')), ['/b', 'a/b', 'b/b', 'c']);
          assert.deepEqual(topicsOf(await store.retainedMatching('+/b')), ['/b', 'a/b', 'b/b']);
          assert.deepEqual(topicsOf(await store.retainedMatching('$SYS/#')), ['$SYS/b']);
          assert.deepEqual(topicsOf(await store.retainedMatching('/+')), ['/b']);
        }),
      );

      test(
        'retained messages are copies',
        withStore(async (store) => {
          const m = retained('t', 'abc');
          await store.putRetained(m);
          m.payload[0] = 0;
          const [read] = await store.retainedMatching('t');
          read.payload[1] = 0;
          assert.deepEqual((await store.retainedMatching('t'))[0].payload, bytes('abc'));
        }),
      );
    });
  });
}

const bytes = (text: string) => new Uint8Array(Buffer.from(text));

/**
 * Reads until `read` returns `expected` (an index may lag its table for a moment), at most a
 * few seconds, and returns the last value read for the caller to assert.
 */
async function eventually<T>(read: () => Promise<T>, expected: T): Promise<T> {
  let value = await read();
  for (let i = 0; i < 20 && !isDeepStrictEqual(value, expected); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await read();
  }
  return value;
}

/** Every message property, user properties interleaved and repeated, an empty value, binary correlation data. */
const fullProperties: MessageProperties = {
  payloadFormatIndicator: true,
  messageExpiryInterval: 60,
  contentType: 'application/json',
  responseTopic: 'reply/here',
  correlationData: Uint8Array.of(0, 255, 7),
  userProperties: [
    ['b', '1'],
    ['a', '2'],
    ['b', '3'],
    ['b', ''],
  ],
};

const will = (topic: string, payload: string, qos: 0 | 1 | 2 = 0) => ({
  topic,
  payload: bytes(payload),
  qos,
  retain: false,
});

function connection(connectionId: string, overrides: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    connectionId,
    clientId: `client-of-${connectionId}`,
    protocolVersion: 4,
    sessionId: 's1',
    cleanSession: false,
    keepAliveSeconds: 60,
    connectedAt: 1_000,
    lastSeen: 1_000,
    ...overrides,
  };
}

const connectionKeys = [
  'connectionId',
  'clientId',
  'protocolVersion',
  'sessionId',
  'cleanSession',
  'keepAliveSeconds',
  'connectedAt',
  'lastSeen',
  'keepAliveDue',
  'will',
  'connectFrameId',
  'user',
  'maximumPacketSize',
] as const;

/** The record's own fields: a backend may keep bookkeeping attributes (an expiry) next to them. */
function connectionFields(record: ConnectionRecord | undefined): ConnectionRecord {
  assert.ok(record, 'connection record');
  return pick(record, connectionKeys);
}

function session(
  clientId: string,
  sessionId: string,
  connectionId: string | undefined,
  overrides: Partial<SessionRecord> = {},
): SessionRecord {
  return {
    clientId,
    sessionId,
    ...(connectionId === undefined ? {} : { connectionId }),
    protocolVersion: 4,
    cleanSession: false,
    ...overrides,
  };
}

/** The record's own fields: a backend may keep counters next to them. */
function sessionFields(record: SessionRecord | undefined): SessionRecord {
  assert.ok(record, 'session record');
  return pick(record, [
    'clientId',
    'sessionId',
    'connectionId',
    'protocolVersion',
    'cleanSession',
    'owner',
    'maximumPacketSize',
    'sessionExpirySeconds',
    'sessionExpiresAt',
  ]);
}

function pick<T extends object, K extends keyof T>(record: T, keys: readonly K[]): T {
  return Object.fromEntries(keys.filter((k) => record[k] !== undefined).map((k) => [k, record[k]])) as T;
}

function subscription(
  clientId: string,
  sessionId: string,
  filter: string,
  qos: 0 | 1 | 2,
  subscribedAt = 1_000,
): SubscriptionRecord {
  return { clientId, sessionId, filter, qos, subscribedAt };
}

const clientsOf = (subscriptions: SubscriptionRecord[]) => subscriptions.map((s) => s.clientId).sort();
const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const sortByClient = (subscriptions: SubscriptionRecord[]) =>
  [...subscriptions].sort((a, b) => byText(a.clientId, b.clientId));
const sortByFilter = (subscriptions: SubscriptionRecord[]) =>
  [...subscriptions].sort((a, b) => byText(a.filter, b.filter));
const clientsAndFilters = (subscriptions: SubscriptionRecord[]) =>
  subscriptions.map((s) => `${s.clientId} ${s.filter}`).sort();

/** Every subscription to a topic `<level>/<n>` for n in 0..9: what the deleteStale cases planted. */
async function subscriptionsUnder(store: BrokerStore, level: string): Promise<SubscriptionRecord[]> {
  const found = await Promise.all(
    Array.from({ length: 10 }, (_, n) => store.subscriptionsMatching(`${level}/${n}`)),
  );
  return found.flat();
}

function message(publisher: string, messageId: string, topic: string, payload: string): StoredMessage {
  return { publisher, messageId, topic, payload: bytes(payload), qos: 2, retain: false, publishedAt: 1_000 };
}

function outbound(
  packetId: number,
  seq: number,
  payload: string,
  overrides: Partial<OutboundMessage> = {},
): OutboundMessage & { payload: Uint8Array } {
  return {
    packetId,
    seq,
    topic: 'out/topic',
    payload: bytes(payload),
    qos: 1,
    retain: false,
    sent: false,
    released: false,
    ...overrides,
  } as OutboundMessage & { payload: Uint8Array };
}

function retained(topic: string, payload: string, qos: 0 | 1 | 2 = 0, publishedAt = 1_000): RetainedMessage {
  return { topic, payload: bytes(payload), qos, retain: true, publishedAt };
}

const topicsOf = (messages: RetainedMessage[]) => messages.map((m) => m.topic).sort();
