import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { planSession } from '../shared/broker/connect-decisions.js';
import { deliveriesFor } from '../shared/broker/fanout.js';
import { grantFor } from '../shared/broker/handlers/subscribe.js';
import { chooseSubprotocol } from '../shared/broker/handshake.js';
import type { QoS, SessionRecord, SubscriptionRecord } from '../shared/ports.js';

// Pure pieces of the broker: who gets a message, which session a CONNECT
// gets, what a SUBSCRIBE is granted, which subprotocol a handshake answers.

const online = (clientId: string, sessionId = `${clientId}-s1`, connectionId = `${clientId}-c1`) =>
  ({ clientId, sessionId, connectionId, protocolVersion: 4, cleanSession: true }) satisfies SessionRecord;
const offline = (clientId: string, sessionId = `${clientId}-s1`): SessionRecord => ({
  clientId,
  sessionId,
  protocolVersion: 5,
  cleanSession: false,
});
const sub = (
  clientId: string,
  filter: string,
  qos: QoS,
  sessionId = `${clientId}-s1`,
): SubscriptionRecord => ({
  clientId,
  sessionId,
  filter,
  qos,
});
const sessionsOf = (...sessions: SessionRecord[]) => new Map(sessions.map((s) => [s.clientId, s]));

describe('deliveriesFor', () => {
  test('[MQTT-3.3.5-1] one delivery per client, at the highest QoS of its matching subscriptions', () => {
    const deliveries = deliveriesFor(
      { qos: 2 },
      [sub('a', 'x/+', 0), sub('a', 'x/#', 1), sub('a', 'x/y', 0), sub('b', '#', 0)],
      sessionsOf(online('a'), online('b')),
    );
    assert.deepEqual(deliveries.map((d) => [d.clientId, d.qos, d.session.connectionId]).sort(), [
      ['a', 1, 'a-c1'],
      ['b', 0, 'b-c1'],
    ]);
  });

  test('[MQTT-3.3.5-1] the delivery QoS is capped by the QoS of the message', () => {
    const subscriptions = [sub('a', 'x', 2), sub('b', 'x', 1), sub('c', 'x', 0)];
    const sessions = sessionsOf(online('a'), online('b'), online('c'));
    const qosOf = (qos: QoS) =>
      Object.fromEntries(deliveriesFor({ qos }, subscriptions, sessions).map((d) => [d.clientId, d.qos]));
    assert.deepEqual(qosOf(0), { a: 0, b: 0, c: 0 });
    assert.deepEqual(qosOf(1), { a: 1, b: 1, c: 0 });
    assert.deepEqual(qosOf(2), { a: 2, b: 1, c: 0 });
  });

  test('the highest QoS wins whatever the order of the subscriptions', () => {
    for (const order of [
      [sub('a', 'x', 1), sub('a', '#', 0)],
      [sub('a', '#', 0), sub('a', 'x', 1)],
    ]) {
      const [delivery] = deliveriesFor({ qos: 1 }, order, sessionsOf(online('a')));
      assert.equal(delivery.qos, 1);
    }
  });

  test('subscriptions left by an older session of the client id are ignored', () => {
    const current = online('a', 'new-session');
    assert.deepEqual(deliveriesFor({ qos: 1 }, [sub('a', 'x', 1, 'old-session')], sessionsOf(current)), []);
    // The old session's QoS 1 does not raise the current session's QoS 0.
    const [delivery] = deliveriesFor(
      { qos: 1 },
      [sub('a', 'x', 1, 'old-session'), sub('a', '#', 0, 'new-session')],
      sessionsOf(current),
    );
    assert.equal(delivery.qos, 0);
    assert.equal(delivery.session, current);
  });

  test('offline persistent sessions get a delivery to queue; offline clean sessions and unknown client ids none', () => {
    const deliveries = deliveriesFor(
      { qos: 1 },
      [sub('away', 'x', 1), sub('gone', 'x', 1), sub('ghost', 'x', 1), sub('here', 'x', 1)],
      sessionsOf(offline('away'), { ...offline('gone'), cleanSession: true }, online('here')),
    );
    assert.deepEqual(deliveries.map((d) => d.clientId).sort(), ['away', 'here']);
  });

  test('property: one delivery per eligible client, at min(message QoS, max subscription QoS)', () => {
    const clients = ['a', 'b', 'c', 'd'];
    fc.assert(
      fc.property(
        fc.constantFrom<QoS>(0, 1, 2),
        fc.array(
          fc.record({
            clientId: fc.constantFrom(...clients),
            generation: fc.constantFrom('s1', 's2'),
            qos: fc.constantFrom<QoS>(0, 1, 2),
          }),
          { maxLength: 12 },
        ),
        fc.array(fc.constantFrom('online-s1', 'online-s2', 'offline-s1', 'none'), {
          minLength: 4,
          maxLength: 4,
        }),
        (messageQoS, subs, states) => {
          const sessions = new Map<string, SessionRecord>();
          clients.forEach((clientId, i) => {
            const [state, generation] = states[i].split('-');
            if (state === 'online') sessions.set(clientId, online(clientId, generation));
            if (state === 'offline') sessions.set(clientId, offline(clientId, generation));
          });
          const subscriptions = subs.map((s) => sub(s.clientId, 'x', s.qos, s.generation));
          const deliveries = deliveriesFor({ qos: messageQoS }, subscriptions, sessions);
          const expected = new Map<string, number>();
          for (const s of subscriptions) {
            const session = sessions.get(s.clientId);
            if (!session || session.sessionId !== s.sessionId) continue;
            if (!session.connectionId && session.cleanSession) continue;
            expected.set(s.clientId, Math.max(expected.get(s.clientId) ?? 0, Math.min(s.qos, messageQoS)));
          }
          assert.equal(new Set(deliveries.map((d) => d.clientId)).size, deliveries.length, 'one per client');
          assert.deepEqual(new Map(deliveries.map((d) => [d.clientId, d.qos])), expected);
          for (const d of deliveries) assert.equal(d.session, sessions.get(d.clientId));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('planSession', () => {
  const ids = () => {
    let n = 0;
    return () => `new-${++n}`;
  };

  test('[MQTT-3.1.2-4] a persistent CONNECT resumes the stored persistent session', () => {
    assert.deepEqual(planSession(offline('a', 'kept'), false, ids()), { sessionId: 'kept', resumed: true });
  });

  test('[MQTT-3.1.2-4] a persistent CONNECT without a stored session starts a new one', () => {
    assert.deepEqual(planSession(undefined, false, ids()), { sessionId: 'new-1', resumed: false });
  });

  test('[MQTT-3.1.2-6] a clean CONNECT always starts a new session', () => {
    assert.deepEqual(planSession(offline('a', 'kept'), true, ids()), { sessionId: 'new-1', resumed: false });
    assert.deepEqual(planSession(undefined, true, ids()), { sessionId: 'new-1', resumed: false });
    assert.deepEqual(planSession(online('a', 'live'), true, ids()), { sessionId: 'new-1', resumed: false });
  });

  test('[MQTT-3.1.2-6] a session that was clean is not resumed by a later persistent CONNECT', () => {
    const previous: SessionRecord = { ...online('a', 'was-clean'), cleanSession: true };
    assert.deepEqual(planSession(previous, false, ids()), { sessionId: 'new-1', resumed: false });
  });

  test('a new session id is drawn only when a new session starts', () => {
    let calls = 0;
    const newId = () => `n${++calls}`;
    planSession(offline('a', 'kept'), false, newId);
    assert.equal(calls, 0);
    planSession(offline('a', 'kept'), true, newId);
    assert.equal(calls, 1);
  });
});

describe('grantFor', () => {
  test('[MQTT-3.8.4-6] QoS 0, 1 and 2 are granted as requested', () => {
    for (const version of [4, 5] as const) {
      assert.equal(grantFor('a/b', 0, version), 0);
      assert.equal(grantFor('a/+', 1, version), 1);
      assert.equal(grantFor('a/#', 2, version), 2);
    }
  });

  test('[MQTT-3.9.3-2] an invalid filter is refused with 0x80 in 3.1.1', () => {
    for (const filter of ['', 'sport+', 'a/#/b', 'a\u0000b', 'a/b#']) {
      assert.equal(grantFor(filter, 1, 4), 0x80, JSON.stringify(filter));
    }
  });

  test('an invalid filter is refused with 0x8F Topic Filter invalid in 5.0', () => {
    for (const filter of ['', 'sport+', 'a/#/b', 'a\u0000b', 'a/b#']) {
      assert.equal(grantFor(filter, 1, 5), 0x8f, JSON.stringify(filter));
    }
  });

  test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] a well-formed $share/ filter is granted at either level, a malformed one refused', () => {
    assert.equal(grantFor('$share/group/a/b', 1, 5), 1);
    assert.equal(grantFor('$share/group/#', 0, 5), 0);
    assert.equal(grantFor('$share/group/a/b', 2, 4), 2);
    for (const filter of [
      '$share/',
      '$share/g',
      '$share//a',
      '$share/g/',
      '$share/g+/a',
      '$share/#/a',
      '$share/g/a/#/b',
    ]) {
      assert.equal(grantFor(filter, 1, 5), 0x8f, filter);
      assert.equal(grantFor(filter, 1, 4), 0x80, filter);
    }
    // Only the '$share' level itself marks a shared subscription.
    assert.equal(grantFor('$shared/a', 1, 5), 1);
    assert.equal(grantFor('$share', 1, 5), 1);
  });
});

describe('chooseSubprotocol', () => {
  test('mqtt is chosen when offered, alone or in a list', () => {
    for (const offered of ['mqtt', 'mqttv3.1, mqtt', 'mqtt,mqttv3.1', ' mqtt ', 'a,b, mqtt']) {
      assert.equal(chooseSubprotocol(offered), 'mqtt', offered);
    }
  });

  test('no subprotocol is chosen when mqtt is not offered', () => {
    for (const offered of [undefined, '', 'mqttv3.1', 'MQTT', 'mqtt5', 'graphql-ws', 'mq tt', 'xmqtt']) {
      assert.equal(chooseSubprotocol(offered), undefined, String(offered));
    }
  });
});
