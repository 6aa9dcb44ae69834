import type { BrokerStore } from '../ports.js';

type PacketId = { packetId: number; seq: number };

interface Range {
  readonly sessionId: string;
  ids: PacketId[];
  usedAt: number;
}

/** Ids reserved per refill: one counter write then serves this many QoS 1 deliveries to the session. */
export const packetIdBlock = 64;
/** A range unused this long is dropped, so an instance holds few ids of a session it no longer serves. */
const idleMs = 60_000;
/** Sessions remembered per store; beyond, the least recently used range is dropped. */
const maxRanges = 50_000;

/**
 * Packet ids for QoS 1 PUBLISHes to clean sessions, taken from a range this
 * instance reserved with one counter write ({@link BrokerStore.reservePacketIds})
 * instead of one write per delivery. A clean session keeps nothing to resend,
 * so its ids need only be unique among its unacknowledged PUBLISHes
 * [MQTT-2.2.1-3]: every range is cut from the session's one atomic counter,
 * so no id is handed out twice until that counter has moved 65,535 further,
 * which at {@link packetIdBlock} ids per refill takes over a thousand refills
 * while one PUBLISH stays unacknowledged. A range belongs to one session id:
 * a new session of the client id starts from a fresh reservation.
 *
 * @example
 * const ranges = packetIdRangesFor(ctx.store);
 * const { packetId } = await ranges.next(session.clientId, session.sessionId, 3, ctx.now());
 */
export class PacketIdRanges {
  private readonly ranges = new Map<string, Range>();

  constructor(private readonly store: BrokerStore) {}

  /** The next id of the session's range; `wanted` sizes the refill when the range runs out. */
  async next(clientId: string, sessionId: string, wanted: number, now: number): Promise<PacketId> {
    let range = this.ranges.get(clientId);
    if (!range || range.sessionId !== sessionId || range.ids.length === 0 || now - range.usedAt > idleMs) {
      const ids = await this.store.reservePacketIds(clientId, Math.max(wanted, packetIdBlock));
      range = { sessionId, ids, usedAt: now };
    }
    // Re-inserted so the map's order is least recently used first.
    this.ranges.delete(clientId);
    this.ranges.set(clientId, range);
    range.usedAt = now;
    while (this.ranges.size > maxRanges) {
      const oldest = this.ranges.keys().next().value;
      if (oldest === undefined) break;
      this.ranges.delete(oldest);
    }
    const id = range.ids.shift();
    if (!id) throw new Error('packet id range unexpectedly empty'); // unreachable: refilled above
    return id;
  }
}

const byStore = new WeakMap<BrokerStore, PacketIdRanges>();

/** This instance's ranges for the store (one per store, so tests with fresh stores do not share them). */
export function packetIdRangesFor(store: BrokerStore): PacketIdRanges {
  let ranges = byStore.get(store);
  if (!ranges) {
    ranges = new PacketIdRanges(store);
    byStore.set(store, ranges);
  }
  return ranges;
}
