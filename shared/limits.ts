/**
 * The broker's quotas on what one client may send: lengths that keep every
 * DynamoDB key the broker builds within DynamoDB's key limits, and the work one
 * packet may ask for. Read from the environment (shared/config.ts), set by the
 * CDK construct and the emulator (shared/function-environment.ts).
 * docs/adr/0010-limits-and-hostile-input.md explains each choice.
 */

export interface BrokerLimits {
  /**
   * Longest MQTT 5 Session Expiry Interval granted, in seconds; a longer request is cut to it
   * and the CONNACK says so. 4294967295 (the default): a session may be kept for ever.
   */
  readonly maxSessionExpirySeconds: number;
  /** Longest client id, in UTF-8 bytes: a partition key, and part of the Deliveries and Subscriptions sort keys. */
  readonly maxClientIdBytes: number;
  /** Longest topic name, in UTF-8 bytes: the Retained table's sort key. */
  readonly maxTopicBytes: number;
  /** Longest topic filter, in UTF-8 bytes: the Subscriptions sort key holds it with the client id. */
  readonly maxFilterBytes: number;
  /**
   * Most packets one WebSocket frame may carry; a frame with more closes its connection (5.0:
   * DISCONNECT 0x96 Message rate too high) before any is handled, so a frame's work fits the
   * function timeout, and a connection's rate is bounded, its frames being handled one at a time.
   */
  readonly maxPacketsPerFrame: number;
  /** Most subscriptions one session may hold; a SUBSCRIBE adding more has those filters refused with 0x97. */
  readonly maxSubscriptionsPerSession: number;
  /** Most filters one SUBSCRIBE may carry; the rest are refused in the SUBACK, so the packet fits the function timeout. */
  readonly maxFiltersPerSubscribe: number;
  /**
   * Sustained PUBLISH packets per second one connection may send, measured by when the queue
   * received its frames; faster closes it (5.0: DISCONNECT 0x96 Message rate too high). 0: no limit.
   */
  readonly maxPublishesPerSecond: number;
  /** PUBLISH packets a connection may send at once above that rate (the token bucket's size). */
  readonly publishBurst: number;
  /**
   * Simultaneous connections of one authenticated user; the next CONNECT is refused (3.1.1:
   * CONNACK 3, 5.0: CONNACK 0x97 Quota exceeded). 0: no limit. Anonymous clients are not counted.
   */
  readonly maxConnectionsPerUser: number;
  /**
   * MQTT 5 Topic Alias Maximum, both ways: the CONNACK offers it to clients [MQTT-3.2.2-17], and
   * the broker uses at most this many (and no more than the client allows) on what it sends
   * [MQTT-3.1.2-26]. Each alias is kept with the connection, so it bounds those records. 0: off.
   */
  readonly topicAliasMaximum: number;
  /**
   * MQTT 5 Server Keep Alive, seconds: a 5.0 client asking a keep-alive of 0, below this, or above
   * `gatewayKeepAliveCeiling` (540) is told in CONNACK to use this (or 540) instead, and is held to
   * it [MQTT-3.2.2-21]. Fewer PINGREQs for idle fleets, which API Gateway bills; slower detection of
   * dead clients. 0 (the default): every client keeps its own keep-alive. At most 540.
   */
  readonly serverKeepAliveSeconds: number;
  /**
   * The broker's Receive Maximum, announced to 5.0 clients in CONNACK: most QoS 2 PUBLISHes one
   * may have awaiting PUBREL (QoS 1 is acknowledged as soon as it is stored); one more is
   * DISCONNECT 0x93 [MQTT-3.3.4-8]. Each is a stored row until PUBREL. 65,535: none announced.
   */
  readonly receiveMaximum: number;
}

/** DynamoDB's largest sort key value, in bytes. */
export const dynamoSortKeyLimit = 1024;
/** DynamoDB's largest partition key value, in bytes. */
export const dynamoPartitionKeyLimit = 2048;

/**
 * Bytes of a Deliveries sort key besides the publisher's client id: the QoS 2
 * marker `qos2#<publisher>#<message id>` (shared/storage/keys.ts), whose
 * message id is a 9-character time, a dash and a 36-character UUID; rounded up.
 */
const qos2MarkerOverheadBytes = 64;
/** Bytes of a Subscriptions sort key besides filter and client id: the separator. */
const subscriptionKeySeparatorBytes = 1;

/** What the broker accepts when nothing is configured. */
export const defaultLimits: BrokerLimits = {
  // Far above MQTT's 23 and AWS IoT Core's 128: long enough for any naming scheme, short enough to key on.
  maxClientIdBytes: 256,
  maxTopicBytes: dynamoSortKeyLimit,
  // What the Subscriptions sort key leaves once the longest client id is in it.
  maxFilterBytes: dynamoSortKeyLimit - subscriptionKeySeparatorBytes - 256,
  // A SUBSCRIBE costs a write and a retained-message query per filter: 100 finish well inside 15 s.
  maxFiltersPerSubscribe: 100,
  // A PUBLISH costs one or two writes (~10 ms each): 1,000 fit 15 s, and a burst MQTT.js coalesces into one frame fits 1,000.
  maxPacketsPerFrame: 1000,
  // Each subscription is an item, and the quota check reads the session's list on every SUBSCRIBE.
  maxSubscriptionsPerSession: 1000,
  // Far above a sensor's or a chat's rate; a client above it for seconds is a loop or a flood.
  maxPublishesPerSecond: 100,
  publishBurst: 200,
  // A fleet shares device users rarely above this; a leaked password cannot open thousands.
  maxConnectionsPerUser: 100,
  // A kept session costs only storage while offline; the TTL backstop needs a finite expiry to act.
  maxSessionExpirySeconds: 0xffff_ffff,
  // A device publishing to a handful of long topics saves most of their bytes; more grows every record read.
  topicAliasMaximum: 10,
  // Off: a longer keep-alive also delays noticing dead clients (and their wills); the operator trades the two.
  serverKeepAliveSeconds: 0,
  // Far above what a client needs in flight to keep a link busy; bounds one client's rows awaiting PUBREL.
  receiveMaximum: 100,
};

/** Bytes of topic names the aliases of one connection may hold, in its Connections and Sessions items (400 KB each at most). */
export const topicAliasBudgetBytes = 64 * 1024;

/**
 * Longest keep-alive a client behind API Gateway can use: the gateway closes a WebSocket idle for
 * 10 minutes, so a client must ping within that; 540 s leaves a minute for a late ping.
 */
export const gatewayKeepAliveCeiling = 540;

/** Quotas where 0 means no limit. */
const switchable: ReadonlySet<keyof BrokerLimits> = new Set([
  'maxPublishesPerSecond',
  'maxConnectionsPerUser',
  'topicAliasMaximum',
  'serverKeepAliveSeconds',
]);

/**
 * Why these limits would let a client make a key DynamoDB refuses, or
 * undefined when every key fits.
 *
 * @example
 * limitsFault({ ...defaultLimits, maxClientIdBytes: 2000 }); // 'client ids of 2000 bytes …'
 */
export function limitsFault(limits: BrokerLimits): string | undefined {
  const { maxClientIdBytes, maxTopicBytes, maxFilterBytes, maxFiltersPerSubscribe } = limits;
  // A quota of 0 would refuse everything: each is at least 1, but those 0 switches off.
  for (const [name, value] of Object.entries(limits)) {
    const off = switchable.has(name as keyof BrokerLimits);
    if (!Number.isInteger(value) || value < (off ? 0 : 1))
      return `${name} must be a positive integer${off ? ` or 0 (${name === 'topicAliasMaximum' ? 'off' : 'no limit'})` : ''}, not ${value}`;
  }
  if (maxClientIdBytes + qos2MarkerOverheadBytes > dynamoSortKeyLimit)
    return `client ids of ${maxClientIdBytes} bytes do not fit a Deliveries sort key: at most ${dynamoSortKeyLimit - qos2MarkerOverheadBytes}`;
  if (maxTopicBytes > dynamoSortKeyLimit)
    return `topics of ${maxTopicBytes} bytes do not fit the Retained sort key: at most ${dynamoSortKeyLimit}`;
  if (maxFilterBytes + subscriptionKeySeparatorBytes + maxClientIdBytes > dynamoSortKeyLimit)
    return `filters of ${maxFilterBytes} bytes with client ids of ${maxClientIdBytes} bytes do not fit a Subscriptions sort key: together at most ${dynamoSortKeyLimit - subscriptionKeySeparatorBytes}`;
  if (maxFiltersPerSubscribe > 65_535) return 'maxFiltersPerSubscribe above 65,535 is no limit';
  if (limits.receiveMaximum > 65_535) return 'receiveMaximum above 65,535 is not an MQTT Receive Maximum';
  if (limits.serverKeepAliveSeconds > gatewayKeepAliveCeiling)
    return `serverKeepAliveSeconds above ${gatewayKeepAliveCeiling} lets clients idle past API Gateway's 10-minute idle timeout`;
  if (limits.maxSessionExpirySeconds > 0xffff_ffff)
    return 'maxSessionExpirySeconds above 4294967295 (for ever) is not an MQTT interval';
  if (limits.topicAliasMaximum > 65_535)
    return 'topicAliasMaximum above 65,535 is not an MQTT Topic Alias Maximum';
  if (limits.topicAliasMaximum * maxTopicBytes > topicAliasBudgetBytes)
    return `${limits.topicAliasMaximum} topic aliases of topics up to ${maxTopicBytes} bytes do not fit the ${topicAliasBudgetBytes} bytes a connection's record keeps for them: lower topicAliasMaximum or maxTopicBytes`;
  return undefined;
}
