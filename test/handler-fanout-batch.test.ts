import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IPublishPacket } from 'mqtt-packet';
import { type FanOutPage, fanOutBatch, fanOutPage } from '../shared/broker/fanout-batch.js';
import { packetIdBlock } from '../shared/broker/packet-id-ranges.js';
import { MAX_FRAME_BYTES } from '../shared/protocol/wire.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// The fan-out of a whole stream batch: one post per connection, stream order kept per publisher,
// packet ids without a write per delivery, and large fan-outs split into pages.

/** Fans out, as one stream batch, every message accepted since the last call. */
function streamBatch(
  broker: TestBroker,
  from: { next: number },
  options: Parameters<typeof fanOutBatch>[2] = {},
) {
  const batch = broker.store.accepted.slice(from.next);
  from.next = broker.store.accepted.length;
  return fanOutBatch(broker.ctx, batch, options);
}

const publishesIn = (broker: TestBroker, connectionId: string) =>
  broker.gateway.sent
    .filter((f) => f.connectionId === connectionId)
    .map((f) => f.packets.filter((p): p is IPublishPacket => p.cmd === 'publish'));

/** Counts the store's packet id writes. */
function countReservations(broker: TestBroker): { single: number; ranges: number } {
  const counts = { single: 0, ranges: 0 };
  const store = broker.store;
  const single = store.reservePacketId.bind(store);
  const ranges = store.reservePacketIds.bind(store);
  store.reservePacketId = (clientId) => {
    counts.single++;
    return single(clientId);
  };
  store.reservePacketIds = (clientId, count) => {
    counts.ranges++;
    return ranges(clientId, count);
  };
  return counts;
}

async function twoPublishersOneSubscriber(qos: 0 | 1, clean = true) {
  const broker = testContext();
  await connectAs(broker, 'sub', 'sub', { clean });
  await sendPackets(broker, 'sub', [subscribePacket(1, ['t/#', qos])]);
  await connectAs(broker, 'pa', 'pa');
  await connectAs(broker, 'pb', 'pb');
  broker.gateway.clear();
  let id = 1;
  for (let i = 0; i < 5; i++) {
    await sendPackets(broker, 'pa', [publishPacket('t/a', `a${i}`, qos, { messageId: id++ })]);
    await sendPackets(broker, 'pb', [publishPacket('t/b', `b${i}`, qos, { messageId: id++ })]);
  }
  return broker;
}

describe('fan-out of a stream batch', () => {
  test('[MQTT-4.6.0-5] a connection gets all its PUBLISHes of the batch in one post, in stream order', async () => {
    const broker = await twoPublishersOneSubscriber(1);
    const result = await streamBatch(broker, { next: 0 });
    assert.equal(result.sent, 10);
    const frames = publishesIn(broker, 'sub');
    assert.equal(frames.length, 1, 'one post for ten deliveries');
    assert.deepEqual(
      frames[0]?.map((p) => p.payload.toString()),
      ['a0', 'b0', 'a1', 'b1', 'a2', 'b2', 'a3', 'b3', 'a4', 'b4'],
    );
  });

  test('[MQTT-2.2.1-3] clean session QoS 1: unique packet ids from one reserved range, no write per delivery', async () => {
    const broker = await twoPublishersOneSubscriber(1);
    const counts = countReservations(broker);
    const from = { next: 0 };
    await streamBatch(broker, from);
    // A second batch draws on the same range: still one write.
    for (let i = 0; i < 10; i++)
      await sendPackets(broker, 'pa', [publishPacket('t/a', `c${i}`, 1, { messageId: 100 + i })]);
    await streamBatch(broker, from);
    assert.deepEqual(counts, { single: 0, ranges: 1 });
    const ids = publishesIn(broker, 'sub')
      .flat()
      .map((p) => p.messageId);
    assert.equal(ids.length, 20);
    assert.equal(new Set(ids).size, 20, 'no packet id twice among unacknowledged PUBLISHes');
    assert.ok(20 < packetIdBlock);
  });

  test('[MQTT-2.2.1-3] a used-up range is refilled with one more write, ids still distinct', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'sub');
    await sendPackets(broker, 'sub', [subscribePacket(1, ['t', 1])]);
    await connectAs(broker, 'p', 'p');
    const counts = countReservations(broker);
    const from = { next: 0 };
    const total = packetIdBlock + 10;
    for (let i = 0; i < total; i++) {
      await sendPackets(broker, 'p', [publishPacket('t', `m${i}`, 1, { messageId: (i % 60_000) + 1 })]);
      if (i % 7 === 0) await streamBatch(broker, from);
    }
    await streamBatch(broker, from);
    assert.deepEqual(counts, { single: 0, ranges: 2 });
    const packets = publishesIn(broker, 'sub').flat();
    assert.deepEqual(
      packets.map((p) => p.payload.toString()),
      Array.from({ length: total }, (_, i) => `m${i}`),
    );
    assert.equal(new Set(packets.map((p) => p.messageId)).size, total);
  });

  test('a persistent session reserves its batch ids in one write and queues them in delivery order', async () => {
    const broker = await twoPublishersOneSubscriber(1, false);
    const counts = countReservations(broker);
    await streamBatch(broker, { next: 0 });
    assert.deepEqual(counts, { single: 0, ranges: 1 });
    const queued = await broker.store.outboundMessages('sub');
    const sent = publishesIn(broker, 'sub').flat();
    assert.deepEqual(
      queued.map((m) => m.packetId),
      sent.map((p) => p.messageId),
    );
    assert.deepEqual(
      queued.map((m) => Buffer.from(m.payload).toString()),
      ['a0', 'b0', 'a1', 'b1', 'a2', 'b2', 'a3', 'b3', 'a4', 'b4'],
    );
  });

  test('QoS 0 needs no packet id and no write at all', async () => {
    const broker = await twoPublishersOneSubscriber(0);
    const counts = countReservations(broker);
    await streamBatch(broker, { next: 0 });
    assert.deepEqual(counts, { single: 0, ranges: 0 });
    assert.equal(publishesIn(broker, 'sub').flat().length, 10);
  });

  test('PUBLISHes larger than one gateway message together are split over posts, order kept', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'sub');
    await sendPackets(broker, 'sub', [subscribePacket(1, ['big', 0])]);
    await connectAs(broker, 'p', 'p');
    broker.gateway.clear();
    const size = 40_000;
    for (let i = 0; i < 5; i++)
      await sendPackets(broker, 'p', [publishPacket('big', String(i).repeat(size))]);
    await streamBatch(broker, { next: 0 });
    const frames = publishesIn(broker, 'sub');
    assert.ok(frames.length >= 3, `5 × 40 KB needs at least 3 posts of ${MAX_FRAME_BYTES} bytes`);
    for (const frame of broker.gateway.sent)
      assert.ok(Buffer.from(frame.frame, 'base64').length <= MAX_FRAME_BYTES);
    assert.deepEqual(
      frames.flat().map((p) => p.payload.toString()[0]),
      ['0', '1', '2', '3', '4'],
    );
  });

  test('the subscriptions of a batch are read in one call, each distinct topic once', async () => {
    const broker = await twoPublishersOneSubscriber(0);
    const asked: string[][] = [];
    const each = broker.store.subscriptionsMatchingEach.bind(broker.store);
    broker.store.subscriptionsMatchingEach = (topics) => {
      asked.push([...topics]);
      return each(topics);
    };
    assert.equal((await streamBatch(broker, { next: 0 })).sent, 10);
    assert.deepEqual(asked, [['t/a', 't/b']]);
  });

  test('nothing read for one batch is kept for the next: a subscriber acknowledged in between gets the next batch', async () => {
    const broker = await twoPublishersOneSubscriber(0);
    const from = { next: 0 };
    await streamBatch(broker, from);
    await connectAs(broker, 'late', 'late');
    await sendPackets(broker, 'late', [subscribePacket(1, ['t/a', 0])]);
    await sendPackets(broker, 'pa', [publishPacket('t/a', 'after', 0)]);
    assert.equal((await streamBatch(broker, from)).sent, 2);
    assert.deepEqual(
      publishesIn(broker, 'late')
        .flat()
        .map((p) => p.payload.toString()),
      ['after'],
    );
  });

  test('a gone connection counts its deliveries gone and is cleaned up once', async () => {
    const broker = await twoPublishersOneSubscriber(0);
    broker.gateway.markGone('sub');
    const result = await streamBatch(broker, { next: 0 });
    assert.equal(result.gone, 10);
    assert.equal(result.sent, 0);
    assert.equal((await broker.store.getConnection('sub')) === undefined, true);
  });
});

/** `subscribers` clients on `news/#` and `messages` QoS 1 messages from `p` stored for the stream. */
async function audience(subscribers: number, messages = 3) {
  const broker = testContext();
  for (let i = 0; i < subscribers; i++) {
    await connectAs(broker, `s${i}`, `s${i}`);
    await sendPackets(broker, `s${i}`, [subscribePacket(1, ['news/#', 1])]);
  }
  await connectAs(broker, 'p', 'p');
  broker.gateway.clear();
  for (let i = 0; i < messages; i++)
    await sendPackets(broker, 'p', [publishPacket('news/x', `n${i}`, 1, { messageId: i + 1 })]);
  return broker;
}

describe('a fan-out larger than one invocation', () => {
  test('is split into pages run in parallel: every subscriber gets every message, in order, once', async () => {
    const broker = await audience(7);
    const pages: FanOutPage[] = [];
    const result = await streamBatch(
      broker,
      { next: 0 },
      {
        pageSize: 2,
        // As a page invocation would: through JSON, on the same store.
        runPage: async (page) => {
          pages.push(page);
          const json = JSON.parse(JSON.stringify(page)) as FanOutPage;
          return fanOutPage(broker.ctx, { ...json, messages: page.messages });
        },
      },
    );
    assert.equal(pages.length, 3, 'pages beyond the first go elsewhere');
    for (const page of pages)
      assert.ok(new Set(page.matches.flatMap(([, s]) => s.map((x) => x.clientId))).size <= 2);
    assert.equal(result.sent, 21);
    for (let i = 0; i < 7; i++) {
      assert.deepEqual(
        publishesIn(broker, `s${i}`)
          .flat()
          .map((p) => p.payload.toString()),
        ['n0', 'n1', 'n2'],
        `s${i}`,
      );
    }
  });

  test('a failed page is retried; a page that keeps failing fails the batch, for the stream to retry', async () => {
    const broker = await audience(4);
    let calls = 0;
    const flaky = async (page: FanOutPage) => {
      if (++calls === 1) throw new Error('instance crashed');
      return fanOutPage(broker.ctx, page);
    };
    const result = await streamBatch(broker, { next: 0 }, { pageSize: 2, runPage: flaky });
    assert.equal(calls, 2);
    assert.equal(result.sent, 12);

    const again = await audience(4);
    await assert.rejects(
      streamBatch(
        again,
        { next: 0 },
        { pageSize: 2, pageAttempts: 2, runPage: async () => Promise.reject(new Error('down')) },
      ),
      /down/,
    );
  });
});

describe('pages in flight', () => {
  const pause = () => new Promise((resolve) => setTimeout(resolve, 5));

  test('at most pagesInFlight pages run elsewhere at once; every page still runs, every subscriber gets the message', async () => {
    const broker = await audience(9, 1);
    let running = 0;
    let most = 0;
    let started = 0;
    const result = await streamBatch(
      broker,
      { next: 0 },
      {
        pageSize: 1,
        pagesInFlight: 3,
        runPage: async (page) => {
          started++;
          most = Math.max(most, ++running);
          await pause();
          running--;
          return fanOutPage(broker.ctx, page);
        },
      },
    );
    assert.equal(started, 8, 'every page but the first ran elsewhere');
    assert.equal(most, 3);
    assert.equal(result.sent, 9);
    for (let i = 0; i < 9; i++) assert.equal(publishesIn(broker, `s${i}`).flat().length, 1, `s${i}`);
  });

  test('once a page has failed for good, the pages still waiting are not started', async () => {
    const broker = await audience(9, 1);
    let started = 0;
    await assert.rejects(
      streamBatch(
        broker,
        { next: 0 },
        {
          pageSize: 1,
          pagesInFlight: 2,
          pageAttempts: 1,
          runPage: async () => {
            started++;
            await pause();
            throw new Error('down');
          },
        },
      ),
      /down/,
    );
    await pause();
    await pause();
    assert.equal(started, 2, 'the two in flight, then nothing more');
  });
});

describe('sessions remembered across batches', () => {
  function countSessionReads(broker: TestBroker): { reads: number } {
    const counts = { reads: 0 };
    const read = broker.store.getSessions.bind(broker.store);
    broker.store.getSessions = (clientIds) => {
      counts.reads++;
      return read(clientIds);
    };
    return counts;
  }

  async function subscribed(clean: boolean) {
    const broker = testContext();
    await connectAs(broker, 'sub-1', 'sub', { clean });
    await sendPackets(broker, 'sub-1', [subscribePacket(1, ['t', 1])]);
    await connectAs(broker, 'p', 'p');
    return broker;
  }

  test('an online clean session is read once, not on every batch', async () => {
    const broker = await subscribed(true);
    const counts = countSessionReads(broker);
    const from = { next: 0 };
    for (let i = 0; i < 3; i++) {
      await sendPackets(broker, 'p', [publishPacket('t', `m${i}`, 1, { messageId: i + 1 })]);
      await streamBatch(broker, from);
    }
    assert.equal(counts.reads, 1);
    assert.equal(publishesIn(broker, 'sub-1').flat().length, 3);
  });

  test('a clean session that reconnects is a new session id: read afresh, its new connection gets the message', async () => {
    const broker = await subscribed(true);
    const from = { next: 0 };
    await sendPackets(broker, 'p', [publishPacket('t', 'before', 0)]);
    await streamBatch(broker, from);
    await sendPackets(broker, 'sub-1', [{ cmd: 'disconnect' }]);
    await connectAs(broker, 'sub-2', 'sub', { clean: true });
    await sendPackets(broker, 'sub-2', [subscribePacket(1, ['t', 0])]);
    broker.clock.advance(1);
    await sendPackets(broker, 'p', [publishPacket('t', 'after', 0)]);
    await streamBatch(broker, from);
    assert.deepEqual(
      publishesIn(broker, 'sub-2')
        .flat()
        .map((p) => p.payload.toString()),
      ['after'],
    );
    assert.deepEqual(
      publishesIn(broker, 'sub-1')
        .flat()
        .map((p) => p.payload.toString()),
      ['before'],
    );
  });

  test('a remembered connection that is gone is forgotten and its session ended', async () => {
    const broker = await subscribed(true);
    const counts = countSessionReads(broker);
    const from = { next: 0 };
    await sendPackets(broker, 'p', [publishPacket('t', 'one', 0)]);
    await streamBatch(broker, from);
    broker.gateway.markGone('sub-1');
    await sendPackets(broker, 'p', [publishPacket('t', 'two', 0)]);
    assert.equal((await streamBatch(broker, from)).gone, 1);
    assert.equal(counts.reads, 1);
    assert.equal(await broker.store.getSession('sub'), undefined);
    // The client comes back: a new session, read afresh, gets what follows.
    await connectAs(broker, 'sub-2', 'sub', { clean: true });
    await sendPackets(broker, 'sub-2', [subscribePacket(1, ['t', 0])]);
    broker.clock.advance(1);
    await sendPackets(broker, 'p', [publishPacket('t', 'three', 0)]);
    await streamBatch(broker, from);
    assert.equal(counts.reads, 2);
    assert.deepEqual(
      publishesIn(broker, 'sub-2')
        .flat()
        .map((p) => p.payload.toString()),
      ['three'],
    );
  });

  test('[MQTT-3.1.2-5] a persistent session is read every batch; a QoS 1 message to its lost connection stays queued', async () => {
    const broker = await subscribed(false);
    const counts = countSessionReads(broker);
    const from = { next: 0 };
    await sendPackets(broker, 'p', [publishPacket('t', 'online', 1, { messageId: 1 })]);
    await streamBatch(broker, from);
    await sendPackets(broker, 'sub-1', [{ cmd: 'disconnect' }]);
    await sendPackets(broker, 'p', [publishPacket('t', 'offline', 1, { messageId: 2 })]);
    const result = await streamBatch(broker, from);
    assert.equal(counts.reads, 2);
    // The DISCONNECT closed the connection; its $disconnect has not come yet: the post finds it gone.
    assert.equal(result.gone, 1);
    const queued = await broker.store.outboundMessages('sub');
    assert.ok(queued.some((m) => Buffer.from(m.payload).toString() === 'offline'));
  });
});
