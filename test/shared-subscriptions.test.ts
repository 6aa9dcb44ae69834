import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { deliveriesFor } from '../shared/broker/fanout.js';
import { chooseMember, type ShareCandidate, shareDeliveries } from '../shared/broker/shared-subscriptions.js';
import type { QoS, SessionRecord, SubscriptionRecord } from '../shared/ports.js';
import { matchingFilter, parseSharedFilter } from '../shared/topics.js';

// The pure choice of a Shared Subscription group's member (MQTT 5.0 §4.8.2), as properties.

function candidate(clientId: string, online: boolean, filter = '$share/g/t', qos: QoS = 1): ShareCandidate {
  const session: SessionRecord = {
    clientId,
    sessionId: `s-${clientId}`,
    protocolVersion: 5,
    cleanSession: online,
    ...(online ? { connectionId: `c-${clientId}` } : {}),
  };
  const subscription: SubscriptionRecord = { clientId, sessionId: session.sessionId, filter, qos };
  return { subscription, session };
}

const clientIds = fc.uniqueArray(fc.stringMatching(/^[a-z0-9]{1,8}$/), { minLength: 1, maxLength: 12 });
const messageKeys = fc.string({ minLength: 1, maxLength: 40 });

describe('chooseMember', () => {
  test('§4.8.2 every message goes to exactly one member, an online one when there is one', () => {
    fc.assert(
      fc.property(
        clientIds,
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        messageKeys,
        (ids, online, key) => {
          const members = ids.map((id, i) => candidate(id, online[i]));
          const chosen = chooseMember(members, key);
          assert.ok(chosen && members.includes(chosen));
          if (members.some((m) => m.session.connectionId)) assert.ok(chosen.session.connectionId);
        },
      ),
    );
  });

  test('deterministic: the same members in any order and the same key give the same member', () => {
    fc.assert(
      fc.property(clientIds, messageKeys, fc.integer(), (ids, key, seed) => {
        const members = ids.map((id) => candidate(id, true));
        const shuffled = [...members].sort(() => (seed % 2 === 0 ? 1 : -1));
        const reversed = [...members].reverse();
        const chosen = chooseMember(members, key)?.subscription.clientId;
        assert.equal(chooseMember(shuffled, key)?.subscription.clientId, chosen);
        assert.equal(chooseMember(reversed, key)?.subscription.clientId, chosen);
      }),
    );
  });

  test('a member leaving moves only the messages it had won', () => {
    fc.assert(
      fc.property(
        clientIds.filter((ids) => ids.length > 1),
        fc.array(messageKeys, { maxLength: 50 }),
        (ids, keys) => {
          const members = ids.map((id) => candidate(id, true));
          const [gone, ...rest] = members;
          for (const key of keys) {
            const before = chooseMember(members, key);
            if (before !== gone) assert.equal(chooseMember(rest, key), before);
          }
        },
      ),
    );
  });

  test('messages spread evenly: each of n members gets about 1/n of them', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 8 }), fc.string({ maxLength: 6 }), (n, prefix) => {
        const members = Array.from({ length: n }, (_, i) => candidate(`w${i}`, true));
        const counts = new Map<string, number>();
        const messages = 400 * n;
        for (let i = 0; i < messages; i++) {
          const id = chooseMember(members, `${prefix}pub#${i}`)?.subscription.clientId ?? '';
          counts.set(id, (counts.get(id) ?? 0) + 1);
        }
        // 400 expected each: 5 standard deviations either side is far outside chance.
        for (const m of members) {
          const got = counts.get(m.subscription.clientId) ?? 0;
          assert.ok(got > 300 && got < 500, `${m.subscription.clientId}: ${got} of ${messages}`);
        }
      }),
      { numRuns: 20 },
    );
  });
});

describe('shareDeliveries', () => {
  test('one delivery per group, to one of its eligible members, at that member’s granted QoS [MQTT-4.8.2-3]', () => {
    const groupArb = fc.record({
      name: fc.stringMatching(/^[a-z]{1,4}$/),
      members: fc.uniqueArray(fc.stringMatching(/^[a-z]{1,3}$/), { minLength: 1, maxLength: 5 }),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(groupArb, { selector: (g) => g.name, minLength: 1, maxLength: 4 }),
        fc.constantFrom<QoS>(0, 1, 2),
        messageKeys,
        fc.func(fc.boolean()),
        (groups, qos, key, allow) => {
          const candidates = groups.flatMap((g) =>
            g.members.map((m, i) => candidate(m, true, `$share/${g.name}/t`, (i % 3) as QoS)),
          );
          const eligible = ({ clientId }: { clientId: string }) => allow(clientId);
          const deliveries = shareDeliveries({ qos }, key, candidates, eligible);
          for (const g of groups) {
            const share = `$share/${g.name}/t`;
            const mine = deliveries.filter((d) => d.share === share);
            const anyEligible = g.members.some((m) => allow(m));
            assert.equal(mine.length, anyEligible ? 1 : 0);
            if (mine.length === 1) {
              const [d] = mine;
              assert.ok(allow(d.clientId));
              const granted = candidates.find(
                (c) => c.subscription.filter === share && c.subscription.clientId === d.clientId,
              )?.subscription.qos;
              assert.equal(d.qos, Math.min(qos, granted ?? 0));
            }
          }
        },
      ),
    );
  });

  test('deliveriesFor: a client’s non-shared subscriptions give one delivery, each group one more', () => {
    const sessions = new Map(['a', 'b'].map((id) => [id, candidate(id, true).session] as const));
    const subscriptions: SubscriptionRecord[] = [
      { clientId: 'a', sessionId: 's-a', filter: 't', qos: 1 },
      { clientId: 'a', sessionId: 's-a', filter: '+', qos: 0 },
      { clientId: 'a', sessionId: 's-a', filter: '$share/g/t', qos: 1 },
      { clientId: 'b', sessionId: 's-b', filter: '$share/g/t', qos: 1 },
      { clientId: 'a', sessionId: 's-a', filter: '$share/h/#', qos: 2 },
    ];
    const deliveries = deliveriesFor({ qos: 2, publisher: 'p', messageId: 'm' }, subscriptions, sessions);
    assert.deepEqual(deliveries.map((d) => [d.share ?? 'own', d.qos]).sort(), [
      ['$share/g/t', 1],
      ['$share/h/#', 2],
      ['own', 1],
    ]);
  });
});

describe('parseSharedFilter', () => {
  test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] a ShareName of at least one character without / + #, then a filter', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 6 }), fc.string({ maxLength: 8 }), (name, rest) => {
        const parsed = parseSharedFilter(`$share/${name}/${rest}`);
        const nameOk = name.length > 0 && !/[/+#]/.test(name);
        if (!nameOk && !name.includes('/')) assert.equal(parsed, 'malformed');
        if (typeof parsed === 'object') {
          assert.equal(`$share/${parsed.shareName}/${parsed.topicFilter}`, `$share/${name}/${rest}`);
          assert.ok(parsed.shareName.length > 0 && !/[/+#]/.test(parsed.shareName));
          assert.equal(matchingFilter(`$share/${name}/${rest}`), parsed.topicFilter);
        }
      }),
    );
    assert.equal(parseSharedFilter('a/b'), undefined);
    assert.equal(parseSharedFilter('$share'), undefined);
    assert.equal(matchingFilter('a/+'), 'a/+');
  });
});
