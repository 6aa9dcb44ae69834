import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BrokerStore, ConnectionRecord, SessionRecord } from '../../shared/ports.js';

/**
 * The `BrokerStore` contract of MQTT 5 Topic Aliases (shared/ports.ts): the connection's inbound
 * mapping, and the session's outbound aliases, numbered without gaps, scoped to one connection.
 * Registered by `storeConformance` (test/support/store-conformance.ts).
 */
export function topicAliasConformance(
  withStore: (body: (store: BrokerStore) => Promise<void>) => () => Promise<void>,
): void {
  describe('topic aliases', () => {
    test(
      'setInboundTopicAliases: replaces the map on the connection record; a gone connection stays gone',
      withStore(async (store) => {
        await store.claimConnection(connection('c1'));
        await store.setInboundTopicAliases('c1', { 1: 'a/b', 2: 'c/d' });
        await store.setInboundTopicAliases('c1', { 1: 'a/b', 2: 'e/f' });
        const record = await store.getConnection('c1');
        assert.deepEqual(record?.inboundTopicAliases, { 1: 'a/b', 2: 'e/f' });
        assert.equal(record?.clientId, 'alice', 'the rest of the record is kept');
        await store.setInboundTopicAliases('gone', { 1: 'a/b' });
        assert.equal(await store.getConnection('gone'), undefined);
      }),
    );

    test(
      'replaceSession keeps the client’s topicAliasMaximum, and a session without one drops it',
      withStore(async (store) => {
        const first = session('c1', { topicAliasMaximum: 7 });
        await store.replaceSession(first, undefined);
        assert.equal((await store.getSession('alice'))?.topicAliasMaximum, 7);
        assert.equal((await store.getSessions(['alice'])).get('alice')?.topicAliasMaximum, 7);
        await store.replaceSession(session('c2'), first);
        assert.equal((await store.getSession('alice'))?.topicAliasMaximum, undefined);
      }),
    );

    test(
      'assignTopicAlias: numbers 1, 2, … without gaps on the serving connection; the next number only',
      withStore(async (store) => {
        await store.replaceSession(session('c1'), undefined);
        assert.equal(await store.assignTopicAlias('alice', 'c1', 'a/b', 2), false, 'a gap');
        assert.equal(await store.assignTopicAlias('alice', 'c1', 'a/b', 1), true);
        assert.equal(await store.assignTopicAlias('alice', 'c1', 'c/d', 1), false, 'alias 1 is taken');
        assert.equal(await store.assignTopicAlias('alice', 'c1', 'c/d', 3), false, 'a gap');
        assert.equal(await store.assignTopicAlias('alice', 'c1', 'c/d', 2), true);
        assert.deepEqual((await store.getSession('alice'))?.outboundTopicAliases, {
          connectionId: 'c1',
          aliases: { 1: { topic: 'a/b', confirmed: false }, 2: { topic: 'c/d', confirmed: false } },
        });
        assert.deepEqual((await store.getSessions(['alice'])).get('alice')?.outboundTopicAliases, {
          connectionId: 'c1',
          aliases: { 1: { topic: 'a/b', confirmed: false }, 2: { topic: 'c/d', confirmed: false } },
        });
      }),
    );

    test(
      'assignTopicAlias: only for the connection serving the session, false without a session',
      withStore(async (store) => {
        assert.equal(await store.assignTopicAlias('nobody', 'c1', 'a/b', 1), false);
        await store.replaceSession(session('c1'), undefined);
        assert.equal(await store.assignTopicAlias('alice', 'old', 'a/b', 1), false);
        assert.equal((await store.getSession('alice'))?.outboundTopicAliases, undefined);
      }),
    );

    test(
      'assignTopicAlias: of two deliveries racing for the same number, one wins',
      withStore(async (store) => {
        await store.replaceSession(session('c1'), undefined);
        await store.assignTopicAlias('alice', 'c1', 'a/b', 1);
        const won = await Promise.all([
          store.assignTopicAlias('alice', 'c1', 'c/d', 2),
          store.assignTopicAlias('alice', 'c1', 'e/f', 2),
        ]);
        assert.deepEqual(won.filter(Boolean), [true]);
        const aliases = (await store.getSession('alice'))?.outboundTopicAliases?.aliases;
        assert.deepEqual(Object.keys(aliases ?? {}).sort(), ['1', '2']);
      }),
    );

    test(
      'confirmTopicAlias: marks the alias confirmed only while it is that topic’s on that connection',
      withStore(async (store) => {
        await store.replaceSession(session('c1'), undefined);
        await store.assignTopicAlias('alice', 'c1', 'a/b', 1);
        await store.assignTopicAlias('alice', 'c1', 'c/d', 2);
        await store.confirmTopicAlias('alice', 'c1', 'c/d', 1); // another topic's alias
        await store.confirmTopicAlias('alice', 'other', 'a/b', 1); // another connection
        await store.confirmTopicAlias('alice', 'c1', 'a/b', 3); // never assigned
        await store.confirmTopicAlias('nobody', 'c1', 'a/b', 1);
        assert.deepEqual((await store.getSession('alice'))?.outboundTopicAliases?.aliases, {
          1: { topic: 'a/b', confirmed: false },
          2: { topic: 'c/d', confirmed: false },
        });
        await store.confirmTopicAlias('alice', 'c1', 'a/b', 1);
        assert.deepEqual((await store.getSession('alice'))?.outboundTopicAliases?.aliases, {
          1: { topic: 'a/b', confirmed: true },
          2: { topic: 'c/d', confirmed: false },
        });
        assert.equal(await store.assignTopicAlias('alice', 'c1', 'e/f', 3), true, 'confirming adds no entry');
      }),
    );

    test(
      '[MQTT-3.3.2-7] a new connection of the session starts from alias 1; the earlier connection’s are dropped',
      withStore(async (store) => {
        const first = session('c1');
        await store.replaceSession(first, undefined);
        await store.assignTopicAlias('alice', 'c1', 'a/b', 1);
        await store.assignTopicAlias('alice', 'c1', 'c/d', 2);
        await store.confirmTopicAlias('alice', 'c1', 'a/b', 1);
        await store.replaceSession(session('c2'), first);
        assert.equal((await store.getSession('alice'))?.outboundTopicAliases, undefined);
        assert.equal(await store.assignTopicAlias('alice', 'c2', 'e/f', 3), false);
        assert.equal(await store.assignTopicAlias('alice', 'c2', 'e/f', 1), true);
        assert.deepEqual((await store.getSession('alice'))?.outboundTopicAliases, {
          connectionId: 'c2',
          aliases: { 1: { topic: 'e/f', confirmed: false } },
        });
      }),
    );

    test(
      'endSession drops the connection’s aliases with it',
      withStore(async (store) => {
        await store.replaceSession(session('c1'), undefined);
        await store.assignTopicAlias('alice', 'c1', 'a/b', 1);
        assert.equal(await store.endSession('alice', 'c1', false), true);
        assert.equal((await store.getSession('alice'))?.outboundTopicAliases, undefined);
      }),
    );
  });
}

function connection(connectionId: string): ConnectionRecord {
  return {
    connectionId,
    clientId: 'alice',
    protocolVersion: 5,
    sessionId: 's1',
    cleanSession: false,
    keepAliveSeconds: 60,
    connectedAt: 1_000,
    lastSeen: 1_000,
  };
}

function session(connectionId: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    clientId: 'alice',
    sessionId: 's1',
    connectionId,
    protocolVersion: 5,
    cleanSession: false,
    ...overrides,
  };
}
