import type { MqttClient } from 'mqtt';
import { sleep } from './common.js';

/** What went missing in a traffic run; all zero when the run was whole. */
export interface Shortfall {
  /** Publishers and subscribers whose connection closed during the run, by the error that closed it. */
  lost: { publishers: number; subscribers: number; reasons: Record<string, number> };
  /** Publishes not put on the wire: their client's connection was gone. */
  unsent: number;
  /** QoS 1 publishes put on the wire and never acknowledged. */
  unacknowledged: number;
  /** Deliveries expected (publishes on the wire × subscribers) that did not arrive in time. */
  missing: number;
  expected: number;
}

/**
 * The shortfall in words for the report, or undefined when nothing went missing.
 *
 * @example
 * describeShortfall({ lost: { publishers: 3, subscribers: 0, reasons: { 'Keepalive timeout': 3 } },
 *   unsent: 120, unacknowledged: 0, missing: 4, expected: 400 }, { publishers: 10, subscribers: 1 });
 * // '3 of 10 publishers lost their connection (Keepalive timeout ×3); 120 publishes not sent; 4 of 400 deliveries missing'
 */
export function describeShortfall(
  shortfall: Shortfall,
  fleet: { publishers: number; subscribers: number },
): string | undefined {
  const { lost, unsent, unacknowledged, missing, expected } = shortfall;
  const parts: string[] = [];
  const who = [
    lost.publishers ? `${lost.publishers} of ${fleet.publishers} publishers` : '',
    lost.subscribers ? `${lost.subscribers} of ${fleet.subscribers} subscribers` : '',
  ].filter(Boolean);
  if (who.length) {
    const reasons = Object.entries(lost.reasons)
      .map(([reason, n]) => `${reason} ×${n}`)
      .join(', ');
    parts.push(`${who.join(' and ')} lost their connection${reasons ? ` (${reasons})` : ''}`);
  }
  if (unsent) parts.push(`${unsent} publishes not sent`);
  if (unacknowledged) parts.push(`${unacknowledged} QoS 1 publishes never acknowledged`);
  if (missing) parts.push(`${missing} of ${expected} deliveries missing`);
  return parts.length ? parts.join('; ') : undefined;
}

/** Polls `done` every 100 ms until it holds or `ms` have passed; whether it held. */
export async function waitFor(done: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
  return true;
}

/**
 * Watches a run's clients: which closed and why (MQTT.js emits the error, say 'Keepalive timeout',
 * before 'close'), and the PUBLISH packets each publisher actually wrote to its transport.
 */
export class FleetWatch {
  /** PUBLISH packets written to a transport, per publisher. */
  readonly onWire: number[];
  private readonly closedBy = new Map<MqttClient, string>();
  private readonly lastError = new Map<MqttClient, string>();

  constructor(
    private readonly publishers: readonly MqttClient[],
    private readonly subscribers: readonly MqttClient[],
  ) {
    this.onWire = publishers.map(() => 0);
    publishers.forEach((client, i) => {
      client.on('packetsend', (packet) => {
        if (packet.cmd === 'publish') this.onWire[i]++;
      });
    });
    for (const client of [...publishers, ...subscribers]) {
      client.on('error', (error) => this.lastError.set(client, error.message));
      client.once('close', () =>
        this.closedBy.set(client, this.lastError.get(client) ?? 'closed by the broker or the network'),
      );
    }
  }

  /** Publishes written to a transport, in all. */
  get published(): number {
    return this.onWire.reduce((sum, n) => sum + n, 0);
  }

  alive(client: MqttClient): boolean {
    return !this.closedBy.has(client);
  }

  /** Lost clients, counted before the run's own close. */
  lost(): Shortfall['lost'] {
    const reasons: Record<string, number> = {};
    for (const reason of this.closedBy.values()) reasons[reason] = (reasons[reason] ?? 0) + 1;
    return {
      publishers: this.publishers.filter((c) => !this.alive(c)).length,
      subscribers: this.subscribers.filter((c) => !this.alive(c)).length,
      reasons,
    };
  }
}
