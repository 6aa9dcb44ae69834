import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { fanOut } from '../shared/broker/fanout.js';
import { sweep } from '../shared/broker/sweep.js';
import {
  isClientMessage,
  publishBrokerFigures,
  sysMessages,
  TrafficTally,
} from '../shared/broker/sys-topics.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

const published = (packets: Packet[]) =>
  new Map(
    packets
      .filter((p): p is IPublishPacket => p.cmd === 'publish')
      .map((p) => [p.topic, Buffer.from(p.payload).toString()]),
  );

/** What the sweeper function does once a minute: sweep, then publish the figures. */
async function sweeperRun(broker: TestBroker): Promise<number> {
  const { scanned, closed, stale } = await sweep(broker.ctx);
  return publishBrokerFigures(broker.ctx, scanned - closed - stale);
}

/** Plays the stream as the fan-out function does: fan out, then add the batch to the counts. */
async function fanOutBatch(broker: TestBroker, from: number): Promise<void> {
  const batch = broker.store.accepted.slice(from);
  // Every batch written at once, as a tally whose interval has always passed.
  const tally = new TrafficTally(0);
  for (const message of batch) tally.add(await fanOut(broker.ctx, message), 0);
  tally.add({ sent: 0, queued: 0, dropped: 0, gone: 0 }, batch.filter(isClientMessage).length);
  await tally.flushIfDue(broker.ctx);
}

test('sysMessages: Mosquitto topic names, decimal text payloads', () => {
  const topics = sysMessages({
    clientsConnected: 3,
    messagesReceived: 10,
    messagesSent: 12,
    subscriptions: 4,
    retainedMessages: 2,
  });
  assert.equal(topics['$SYS/broker/clients/connected'], '3');
  assert.equal(topics['$SYS/broker/messages/received'], '10');
  assert.equal(topics['$SYS/broker/messages/sent'], '12');
  assert.equal(topics['$SYS/broker/subscriptions/count'], '4');
  assert.equal(topics['$SYS/broker/retained messages/count'], '2');
  assert.match(topics['$SYS/broker/version'], /^Nimbus MQTT \d+\.\d+\.\d+$/);
});

test('the figures are published retained: a $SYS/# subscriber gets them live and at SUBSCRIBE; # does not [MQTT-4.7.2-1]', async () => {
  const broker = testContext();
  await connectAs(broker, 'watch', 'watcher');
  await connectAs(broker, 'all', 'everything');
  await sendPackets(broker, 'watch', [subscribePacket(1, ['$SYS/#', 0])]);
  await sendPackets(broker, 'all', [subscribePacket(1, ['#', 0])]);
  assert.ok((await sweeperRun(broker)) > 0);
  await broker.stream();
  const live = published(broker.gateway.packetsTo('watch'));
  assert.equal(live.get('$SYS/broker/clients/connected'), '2');
  assert.equal(live.get('$SYS/broker/subscriptions/count'), '2');
  assert.deepEqual(published(broker.gateway.packetsTo('all')), new Map());

  // A later subscriber gets the retained figures with its SUBACK.
  await connectAs(broker, 'late', 'late');
  await sendPackets(broker, 'late', [subscribePacket(1, ['$SYS/broker/clients/+', 0])]);
  assert.equal(published(broker.gateway.packetsTo('late')).get('$SYS/broker/clients/connected'), '2');
});

test('only figures that changed are published again', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'a');
  await sweeperRun(broker);
  // The first run's retained messages changed the retained count; the second settles it.
  await sweeperRun(broker);
  const before = broker.store.accepted.length;
  assert.equal(await sweeperRun(broker), 0);
  await connectAs(broker, 'c2', 'b');
  assert.equal(await sweeperRun(broker), 1);
  assert.deepEqual(
    broker.store.accepted.slice(before).map((m) => [m.topic, Buffer.from(m.payload).toString()]),
    [['$SYS/broker/clients/connected', '2']],
  );
});

test('messages received and sent count client traffic once per batch; the broker own $SYS/ messages are not received', async () => {
  const broker = testContext();
  await connectAs(broker, 'pub', 'pub');
  await connectAs(broker, 'sub', 'sub');
  await sendPackets(broker, 'sub', [subscribePacket(1, ['t/#', 0], ['$SYS/#', 0])]);
  await sendPackets(broker, 'pub', [
    publishPacket('t/1', 'a'),
    publishPacket('t/2', 'b'),
    publishPacket('x', 'c'),
  ]);
  await sweeperRun(broker);
  await fanOutBatch(broker, 0);
  const figures = await broker.store.brokerFigures();
  assert.equal(figures.messagesReceived, 3);
  // Two to `sub` on t/#, and each $SYS/ figure to `sub` on $SYS/#.
  const sysSent = broker.store.accepted.filter((m) => !isClientMessage(m)).length;
  assert.equal(figures.messagesSent, 2 + sysSent);
  await sweeperRun(broker);
  await broker.stream();
  const last = published(broker.gateway.packetsTo('sub'));
  assert.equal(last.get('$SYS/broker/messages/received'), '3');
  assert.equal(last.get('$SYS/broker/publish/messages/received'), '3');
});

test('a client may not publish to $SYS/: 5.0 PUBACK 0x87, QoS 0 dropped', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'a', { protocolVersion: 5 });
  await sendPackets(
    broker,
    'c1',
    [
      publishPacket('$SYS/broker/clients/connected', '999', 1, { messageId: 1 }),
      publishPacket('$SYS/x', 'y'),
    ],
    5,
  );
  const puback = broker.gateway.packetsTo('c1').find((p) => p.cmd === 'puback');
  assert.equal(puback?.cmd === 'puback' && puback.reasonCode, 0x87);
  assert.deepEqual(broker.store.accepted, []);
});

test('TrafficTally: one write per interval per instance, nothing lost when a write fails', async () => {
  const broker = testContext();
  const writes: unknown[] = [];
  const add = broker.store.addBrokerCounters.bind(broker.store);
  let failNext = false;
  broker.store.addBrokerCounters = async (delta) => {
    if (failNext) {
      failNext = false;
      throw new Error('throttled');
    }
    writes.push(delta);
    return add(delta);
  };
  const tally = new TrafficTally(60_000);
  const sent = (n: number) => ({ sent: n, queued: 0, dropped: 0, gone: 0 });
  tally.add(sent(1), 0);
  await tally.flushIfDue(broker.ctx); // an instance's first batch writes at once
  tally.add(sent(2), 1);
  await tally.flushIfDue(broker.ctx);
  broker.clock.advance(30_000);
  tally.add(sent(3), 2);
  await tally.flushIfDue(broker.ctx);
  assert.equal(writes.length, 1, 'no second write within the interval');
  broker.clock.advance(30_000);
  failNext = true;
  await assert.rejects(tally.flushIfDue(broker.ctx));
  broker.clock.advance(60_000);
  await tally.flushIfDue(broker.ctx);
  assert.deepEqual(writes, [
    { messagesReceived: 0, messagesSent: 1 },
    { messagesReceived: 3, messagesSent: 5 },
  ]);
  const figures = await broker.store.brokerFigures();
  assert.equal(figures.messagesReceived, 3);
  assert.equal(figures.messagesSent, 6);
});
