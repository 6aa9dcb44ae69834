/**
 * Key builders for the broker's tables (shared/tables.ts). Every store keys
 * its state the same way, so the memory store orders results as DynamoDB does.
 */
import { filterAnchor, matchingFilter } from '../topics.js';

/**
 * A subscription's table key: the filter's anchor partition, sorted by filter then client id.
 * A Shared Subscription sits in its topic filter's partition, so the fan-out finds its members
 * with the others; the whole `$share/…` filter in the sort key keeps each member of each group apart.
 *
 * @example
 * subscriptionKey('home/+/temp', 'c1'); // { anchor: '1|home', filterClient: 'home/+/temp\u0000c1' }
 * subscriptionKey('$share/g/home/+/temp', 'c1'); // { anchor: '1|home', filterClient: '$share/g/home/+/temp\u0000c1' }
 */
export function subscriptionKey(filter: string, clientId: string): { anchor: string; filterClient: string } {
  // MQTT's NUL-free strings [MQTT-1.5.3-2] make U+0000 a safe separator inside a sort key.
  return { anchor: filterAnchor(matchingFilter(filter)), filterClient: `${filter}\u0000${clientId}` };
}

// Zero-padded so entries sort by packet id; the `seq` attribute keeps queuing order across wraps.
const padded = (packetId: number) => String(packetId).padStart(5, '0');

/** Deliveries-table entry prefix of messages queued for or in flight to the client. */
export const outboundPrefix = 'out#';

/** Deliveries-table entry of a QoS 1/2 message to the client. */
export const outboundEntry = (packetId: number) => `${outboundPrefix}${padded(packetId)}`;
/** Deliveries-table entry prefix of packets held back by the client's Receive Maximum. */
export const heldPrefix = 'flow#';
/** Deliveries-table entry of a held packet: zero-padded seq, so the oldest sorts first. */
export const heldEntry = (seq: number) => `${heldPrefix}${String(seq).padStart(15, '0')}`;
/** Deliveries-table entry prefix of inbound QoS 2 packet ids awaiting PUBREL. */
export const inboundPrefix = 'in#';
/** Deliveries-table entry of an inbound QoS 2 packet id awaiting PUBREL. */
export const inboundEntry = (packetId: number) => `${inboundPrefix}${padded(packetId)}`;
/** Deliveries-table entry pinning the packet id of one QoS 2 delivery of a message. */
export const qos2Entry = (messageKey: string) => `qos2#${messageKey}`;
/** Deliveries-table entry leading from a QoS 2 delivery's packet id back to its `qos2#` marker. */
export const qos2PacketEntry = (packetId: number) => `qos2id#${padded(packetId)}`;

/**
 * The retained-table partition of a topic or filter: its first level, marked
 * so an empty level ('/a') is still a valid key.
 *
 * @example
 * retainedRoot('home/kitchen'); // 'r|home'
 */
export const retainedRoot = (topicOrFilter: string) => `r|${topicOrFilter.split('/')[0]}`;

/**
 * Orders sort keys as DynamoDB does: by their UTF-8 bytes.
 *
 * @example
 * ['b', 'a'].sort(compareSortKeys); // ['a', 'b']
 */
export function compareSortKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * The packet id of the `seq`-th reservation: packet identifiers are 1..65535
 * [MQTT-2.3.1-1] and the counter wraps through them.
 *
 * @example
 * packetIdOf(65_536); // 1
 */
export const packetIdOf = (seq: number) => ((seq - 1) % 65_535) + 1;
