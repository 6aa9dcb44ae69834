import mqttPacket, { type Packet } from 'mqtt-packet';
import type { ClientGateway, SendResult } from '../../shared/ports.js';

/** One frame the broker sent, with the packets it decodes to. */
export interface SentFrame {
  readonly connectionId: string;
  readonly frame: string;
  readonly packets: Packet[];
}

/**
 * A `ClientGateway` that keeps what the broker sends and closes instead of
 * reaching a client. Frames are decoded with mqtt-packet in the protocol
 * version the test says the connection speaks (3.1.1 unless told).
 */
export class RecordingGateway implements ClientGateway {
  readonly sent: SentFrame[] = [];
  /** Connection ids in the order the broker closed them. */
  readonly closed: string[] = [];
  private readonly gone = new Set<string>();
  private readonly versions = new Map<string, 4 | 5>();

  /** The protocol version frames to this connection are decoded with. */
  speaks(connectionId: string, version: 4 | 5): void {
    this.versions.set(connectionId, version);
  }

  /** The connection no longer exists: sends answer 'gone', closes false. */
  markGone(connectionId: string): void {
    this.gone.add(connectionId);
  }

  /** Every packet sent to the connection, in order. */
  packetsTo(connectionId: string): Packet[] {
    return this.sent.filter((f) => f.connectionId === connectionId).flatMap((f) => f.packets);
  }

  /** Forgets what was sent and closed so far (the gone connections stay gone). */
  clear(): void {
    this.sent.length = 0;
    this.closed.length = 0;
  }

  async send(connectionId: string, frame: string): Promise<SendResult> {
    if (this.gone.has(connectionId)) return 'gone';
    this.sent.push({ connectionId, frame, packets: this.decode(connectionId, frame) });
    return 'sent';
  }

  async close(connectionId: string): Promise<boolean> {
    if (this.gone.has(connectionId)) return false;
    this.closed.push(connectionId);
    this.gone.add(connectionId);
    return true;
  }

  async isConnected(connectionId: string): Promise<boolean> {
    return !this.gone.has(connectionId);
  }

  private decode(connectionId: string, frame: string): Packet[] {
    const parser = mqttPacket.parser({ protocolVersion: this.versions.get(connectionId) ?? 4 });
    const packets: Packet[] = [];
    parser.on('packet', (packet: Packet) => packets.push(packet));
    parser.on('error', (error: Error) => {
      throw new Error(`the broker sent an undecodable frame to ${connectionId}: ${error.message}`);
    });
    parser.parse(Buffer.from(frame, 'base64'));
    return packets;
  }
}
