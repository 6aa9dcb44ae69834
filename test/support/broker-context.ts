import mqttPacket, { type Packet } from 'mqtt-packet';
import type { Authorizer } from '../../shared/acl.js';
import type { EnhancedAuthenticator } from '../../shared/auth/enhanced.js';
import type { Authenticator } from '../../shared/auth.js';
import type { BrokerContext } from '../../shared/broker/context.js';
import { fanOut } from '../../shared/broker/fanout.js';
import { type FrameOutcome, handleFrame } from '../../shared/broker/inbound.js';
import { RateMemory } from '../../shared/broker/publish-rate.js';
import { type BrokerLimits, defaultLimits } from '../../shared/limits.js';
import type { LoginThrottle } from '../../shared/login-throttle.js';
import type { StoredMessage } from '../../shared/ports.js';
import { MemoryStore } from '../../shared/storage/memory-store.js';
import { connectPacket } from './raw-client.js';
import { RecordingGateway } from './recording-gateway.js';

/** A clock that stands still until the test moves it. */
export class FakeClock {
  constructor(private time = Date.UTC(2026, 0, 1)) {}
  readonly now = (): number => this.time;
  advance(ms: number): void {
    this.time += ms;
  }
}

/** The in-memory store that also lists every message accepted for the stream, in order. */
export class RecordingStore extends MemoryStore {
  readonly accepted: StoredMessage[] = [];

  override async putMessage(message: StoredMessage): Promise<void> {
    this.accepted.push(message);
    await super.putMessage(message);
  }
}

/** A broker context on the in-memory store and a recording gateway, with its parts at hand. */
export interface TestBroker {
  readonly ctx: BrokerContext;
  readonly store: RecordingStore;
  readonly gateway: RecordingGateway;
  readonly clock: FakeClock;
  /** Plays the stream: fans out each accepted message not fanned out yet, in order. */
  stream(): Promise<void>;
}

/**
 * A broker context for handler tests: in-memory store, recording gateway, a
 * fake clock, ids `id-1`, `id-2`, … and a `sleep` that resolves at once.
 *
 * @example
 * const broker = testContext();
 * await sendPackets(broker, 'c1', [connectPacket('a')]);
 */
export function testContext(
  options: {
    authenticator?: Authenticator;
    enhancedAuthenticator?: EnhancedAuthenticator;
    authorizer?: Authorizer;
    loginThrottle?: LoginThrottle;
    maxQueuedPerSession?: number;
    maxPacketSize?: number;
    limits?: Partial<BrokerLimits>;
  } = {},
): TestBroker {
  const clock = new FakeClock();
  const store = new RecordingStore({ now: clock.now });
  const gateway = new RecordingGateway();
  let ids = 0;
  const ctx: BrokerContext = {
    store,
    gateway,
    maxPacketSize: options.maxPacketSize ?? 128 * 1024,
    maxQueuedPerSession: options.maxQueuedPerSession ?? 1000,
    limits: { ...defaultLimits, ...options.limits },
    now: clock.now,
    newId: () => `id-${++ids}`,
    sleep: async () => {},
    publishRates: new RateMemory(),
    ...(options.authenticator ? { authenticator: options.authenticator } : {}),
    ...(options.authorizer ? { authorizer: options.authorizer } : {}),
    ...(options.enhancedAuthenticator ? { enhancedAuthenticator: options.enhancedAuthenticator } : {}),
    ...(options.loginThrottle ? { loginThrottle: options.loginThrottle } : {}),
  };
  let streamed = 0;
  const stream = async () => {
    while (streamed < store.accepted.length) await fanOut(ctx, store.accepted[streamed++]);
  };
  return { ctx, store, gateway, clock, stream };
}

/** Packets as one base64 text frame of the wire contract, encoded by mqtt-packet. */
export function frameOf(packets: readonly Packet[], version: 4 | 5 = 4): string {
  return Buffer.concat(packets.map((p) => mqttPacket.generate(p, { protocolVersion: version }))).toString(
    'base64',
  );
}

/**
 * Sends packets to the broker in one frame, as a client on `connectionId`
 * speaking `version`, and returns what `handleFrame` reports.
 */
export async function sendPackets(
  broker: TestBroker,
  connectionId: string,
  packets: readonly Packet[],
  version: 4 | 5 = 4,
  frameId?: string,
  sourceIp?: string,
  sentAt?: number,
): Promise<FrameOutcome> {
  broker.gateway.speaks(connectionId, version);
  return handleFrame(broker.ctx, connectionId, frameOf(packets, version), frameId, sourceIp, sentAt);
}

/**
 * Connects `clientId` on `connectionId` and returns the packets the broker
 * answered with (the CONNACK, then any resent messages).
 */
export async function connectAs(
  broker: TestBroker,
  connectionId: string,
  clientId: string,
  extra: Partial<mqttPacket.IConnectPacket> = {},
): Promise<Packet[]> {
  const before = broker.gateway.packetsTo(connectionId).length;
  await sendPackets(
    broker,
    connectionId,
    [connectPacket(clientId, extra)],
    extra.protocolVersion === 5 ? 5 : 4,
  );
  return broker.gateway.packetsTo(connectionId).slice(before);
}

/**
 * A PUBLISH packet for a test to send.
 *
 * @example
 * publishPacket('t', 'hi', 1, { messageId: 7 });
 */
export function publishPacket(
  topic: string,
  payload: string,
  qos: 0 | 1 | 2 = 0,
  extra: Partial<mqttPacket.IPublishPacket> = {},
): mqttPacket.IPublishPacket {
  return { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false, ...extra };
}

/** A SUBSCRIBE packet for filters at their QoS. */
export function subscribePacket(
  messageId: number,
  ...subscriptions: Array<[topic: string, qos: 0 | 1 | 2]>
): mqttPacket.ISubscribePacket {
  return {
    cmd: 'subscribe',
    messageId,
    subscriptions: subscriptions.map(([topic, qos]) => ({ topic, qos })),
  };
}
