import mqttPacket, { type Packet } from 'mqtt-packet';
import { WebSocket } from 'ws';

/**
 * A bare WebSocket client that speaks the wire contract by hand, for tests
 * that need exact control over frames (several packets in one frame,
 * garbage, binary frames) where MQTT.js would do the right thing for us.
 */
export class RawClient {
  readonly packets: Packet[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly waiters: Array<() => void> = [];

  private constructor(
    readonly socket: WebSocket,
    private readonly protocolVersion: 4 | 5,
  ) {
    const parser = mqttPacket.parser({ protocolVersion });
    parser.on('packet', (packet: Packet) => {
      this.packets.push(packet);
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.on('message', (data, isBinary) => {
      if (isBinary) throw new Error('the broker sent a binary frame');
      parser.parse(Buffer.from(data.toString(), 'base64'));
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
  }

  static open(
    url: string,
    options: { protocols?: string[]; protocolVersion?: 4 | 5 } = {},
  ): Promise<RawClient> {
    const socket = new WebSocket(url, options.protocols ?? ['mqtt']);
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new RawClient(socket, options.protocolVersion ?? 4)));
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) =>
        reject(new Error(`handshake refused with HTTP ${res.statusCode}`)),
      );
    });
  }

  /** Sends the packets together in one text frame. */
  send(...packets: Packet[]): void {
    const bytes = Buffer.concat(
      packets.map((p) => mqttPacket.generate(p, { protocolVersion: this.protocolVersion })),
    );
    this.socket.send(bytes.toString('base64'));
  }

  /** Sends bytes as one frame, for packets mqtt-packet refuses to generate. */
  sendBytes(bytes: Uint8Array): void {
    this.socket.send(Buffer.from(bytes).toString('base64'));
  }

  sendText(text: string): void {
    this.socket.send(text);
  }

  /** Waits until a packet satisfying `match` has arrived, or fails after `timeoutMs`. */
  async next<T extends Packet['cmd']>(cmd: T, timeoutMs = 10_000): Promise<Extract<Packet, { cmd: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.packets.findIndex((p) => p.cmd === cmd);
      if (index >= 0) return this.packets.splice(index, 1)[0] as Extract<Packet, { cmd: T }>;
      if (this.socket.readyState === WebSocket.CLOSED)
        throw new Error(`connection closed while waiting for ${cmd}`);
      if (Date.now() > deadline) throw new Error(`no ${cmd} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  close(): void {
    this.socket.close();
  }
}

export const connectPacket = (clientId: string, extra: Partial<mqttPacket.IConnectPacket> = {}): Packet => ({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clean: true,
  keepalive: 60,
  clientId,
  ...extra,
});
