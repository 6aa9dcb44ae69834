import type { MqttClient, Packet } from 'mqtt';
import { type LatencySummary, summarize } from './stats.js';

export interface WorkloadOptions {
  /** Names the phase in progress lines and tags payloads, so a late message of another phase is ignored. */
  label: string;
  /** Publish topic; must match the subscriber's filter. */
  topic: string;
  /** QoS of every publish (the subscription is expected to grant the same). */
  qos: 0 | 1 | 2;
  messages: number;
  /** Most messages sent but not yet both delivered and acknowledged. */
  inflight: number;
  /** A message not delivered (or not acknowledged) within this long counts as lost. */
  lossTimeoutMs: number;
  /** After this many losses in a row the broker is taken as broken and the phase stops sending. */
  maxConsecutiveLosses: number;
  progress: (line: string) => void;
}

export interface WorkloadResult {
  label: string;
  messages: number;
  inflight: number;
  sent: number;
  delivered: number;
  lost: number;
  duplicates: number;
  pubackFailures: number;
  /** publish call → subscriber's 'message' event, from the timestamp carried in the payload. */
  deliver: LatencySummary;
  /** The publisher's acknowledgement that ends the flow: PUBACK at QoS 1, PUBCOMP at QoS 2, none at QoS 0. */
  ackPacket: 'PUBACK' | 'PUBCOMP' | null;
  /** publish call → `ackPacket` (publishAsync resolved); no samples at QoS 0. */
  puback: LatencySummary;
  /** QoS 2 only: publish call → PUBREC at the publisher (the broker has stored the message). */
  pubrec?: LatencySummary;
  /**
   * QoS 2 only: publish call → the PUBLISH packet reaching the subscriber. MQTT.js hands a QoS 2
   * message to the application (`deliver`) only on PUBREL, one more round trip through the broker.
   */
  arrive?: LatencySummary;
  /** First send to last delivery. */
  elapsedMs: number;
  /** Delivered messages per second over elapsedMs. */
  throughput: number;
}

interface Payload {
  run: string;
  seq: number;
  sentAt: number;
}

function parsePayload(payload: Buffer): Payload | undefined {
  try {
    const value = JSON.parse(payload.toString()) as Partial<Payload>;
    if (typeof value.run === 'string' && typeof value.seq === 'number' && typeof value.sentAt === 'number') {
      return value as Payload;
    }
  } catch {
    // Not one of ours.
  }
  return undefined;
}

/** Resolves with the value, or with undefined once `ms` passed; the timer never outlives the race. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Publishes `messages` messages at `qos` from `publisher` and waits for each on `subscriber`, keeping
 * at most `inflight` outstanding. Both clients run in this process, so `performance.now()` in the
 * payload and at delivery share one clock.
 */
export async function runWorkload(
  publisher: MqttClient,
  subscriber: MqttClient,
  options: WorkloadOptions,
): Promise<WorkloadResult> {
  const run = `${options.label}-${process.pid}-${Date.now()}`;
  const ackPacket = options.qos === 2 ? 'PUBCOMP' : options.qos === 1 ? 'PUBACK' : null;
  const waiting = new Map<number, (latencyMs: number) => void>();
  const seen = new Set<number>();
  const deliverMs: number[] = [];
  const pubackMs: number[] = [];
  const pubrecMs: number[] = [];
  const arriveMs: number[] = [];
  let duplicates = 0;
  let lastDeliveryAt = 0;

  const onMessage = (_topic: string, payload: Buffer) => {
    const now = performance.now();
    const message = parsePayload(payload);
    if (!message || message.run !== run) return;
    if (seen.has(message.seq)) {
      duplicates++;
      return;
    }
    seen.add(message.seq);
    lastDeliveryAt = now;
    waiting.get(message.seq)?.(now - message.sentAt);
  };
  subscriber.on('message', onMessage);

  // QoS 2: time the PUBREC at the publisher (matched by packet id, recorded when the PUBLISH is
  // written) and the PUBLISH's first arrival at the subscriber, ahead of the PUBREL that releases it.
  const sentIds = new Map<number, number>();
  const arrived = new Set<number>();
  const onPublisherSend = (packet: Packet) => {
    if (packet.cmd !== 'publish' || packet.messageId === undefined) return;
    const message = parsePayload(Buffer.from(packet.payload));
    if (message?.run === run) sentIds.set(packet.messageId, message.sentAt);
  };
  const onPublisherReceive = (packet: Packet) => {
    if (packet.cmd !== 'pubrec' || packet.messageId === undefined) return;
    const sentAt = sentIds.get(packet.messageId);
    if (sentAt === undefined) return;
    sentIds.delete(packet.messageId);
    pubrecMs.push(performance.now() - sentAt);
  };
  const onSubscriberReceive = (packet: Packet) => {
    if (packet.cmd !== 'publish') return;
    const now = performance.now();
    const message = parsePayload(packet.payload as Buffer);
    if (!message || message.run !== run || arrived.has(message.seq)) return;
    arrived.add(message.seq);
    arriveMs.push(now - message.sentAt);
  };
  if (options.qos === 2) {
    publisher.on('packetsend', onPublisherSend);
    publisher.on('packetreceive', onPublisherReceive);
    subscriber.on('packetreceive', onSubscriberReceive);
  }

  let next = 0;
  let sent = 0;
  let lost = 0;
  let pubackFailures = 0;
  let consecutiveLosses = 0;
  let completed = 0;
  let lastReport = performance.now();
  const reportEvery = Math.max(1, Math.floor(options.messages / 10));
  const report = () => {
    lastReport = performance.now();
    const soFar = summarize(deliverMs);
    options.progress(
      `[${options.label}] ${completed}/${options.messages} done, ${deliverMs.length} delivered, ${lost} lost` +
        (soFar.count ? `, deliver p50 ${soFar.p50.toFixed(1)} ms` : ''),
    );
  };
  // Quiet stretches (a slow broker, a message waiting out its loss timeout) still show signs of life.
  const heartbeat = setInterval(() => {
    if (performance.now() - lastReport > 5_000) report();
  }, 1_000);

  const sendOne = async (seq: number) => {
    const delivered = new Promise<number>((resolve) => waiting.set(seq, resolve));
    const sentAt = performance.now();
    sent++;
    const acked = publisher
      .publishAsync(options.topic, JSON.stringify({ run, seq, sentAt } satisfies Payload), {
        qos: options.qos,
      })
      .then(
        () => performance.now() - sentAt,
        () => undefined,
      );
    const [deliverLatency, pubackLatency] = await Promise.all([
      within(delivered, options.lossTimeoutMs),
      within(acked, options.lossTimeoutMs),
    ]);
    waiting.delete(seq);
    // At QoS 0 publishAsync resolves once the packet is written: there is no acknowledgement to time.
    if (ackPacket) {
      if (pubackLatency === undefined) pubackFailures++;
      else pubackMs.push(pubackLatency);
    }
    if (deliverLatency === undefined) {
      lost++;
      consecutiveLosses++;
      const acked = !ackPacket
        ? 'QoS 0, no acknowledgement'
        : pubackLatency === undefined
          ? `no ${ackPacket} either`
          : `${ackPacket} had arrived`;
      options.progress(
        `[${options.label}] message ${seq} not delivered within ${options.lossTimeoutMs} ms (${acked}): lost`,
      );
    } else {
      deliverMs.push(deliverLatency);
      consecutiveLosses = 0;
    }
    completed++;
    if (completed % reportEvery === 0 || completed === options.messages) report();
  };

  const started = performance.now();
  // `inflight` senders share one counter: a window of at most `inflight` outstanding messages.
  const sender = async () => {
    while (next < options.messages && consecutiveLosses < options.maxConsecutiveLosses) {
      await sendOne(next++);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.inflight) }, sender));
  } finally {
    clearInterval(heartbeat);
    subscriber.off('message', onMessage);
    publisher.off('packetsend', onPublisherSend);
    publisher.off('packetreceive', onPublisherReceive);
    subscriber.off('packetreceive', onSubscriberReceive);
  }
  if (consecutiveLosses >= options.maxConsecutiveLosses) {
    options.progress(
      `[${options.label}] ${consecutiveLosses} losses in a row: stopped after ${sent} messages`,
    );
  }
  const elapsedMs = (lastDeliveryAt || performance.now()) - started;
  return {
    label: options.label,
    messages: options.messages,
    inflight: options.inflight,
    sent,
    delivered: deliverMs.length,
    lost,
    duplicates,
    pubackFailures,
    deliver: summarize(deliverMs),
    ackPacket,
    puback: summarize(pubackMs),
    ...(options.qos === 2 ? { pubrec: summarize(pubrecMs), arrive: summarize(arriveMs) } : {}),
    elapsedMs,
    throughput: deliverMs.length / (elapsedMs / 1000),
  };
}
