/**
 * Many bare wire-contract WebSocket subscribers in a process of their own (one process has too few
 * file descriptors for both ends of 10,000 connections, and the measuring clients must not take the
 * CPU the broker is measured with). Each socket decodes its base64 text frames and walks the MQTT
 * fixed headers only: per PUBLISH it reads the topic and counts it, noting the arrival time of the
 * socket's first one. Run as a child with IPC (bench/swarm.ts starts it):
 * `node --import tsx bench/socket-swarm.ts <url> <count>`; it answers `{ opened }` once all are
 * open, `{ tally }` for `{ tally: topic }` and exits on `'close'`.
 */
import { WebSocket } from 'ws';

/** What the sockets got of one topic: how many got it once, more than once, never; first and last arrival (epoch ms). */
export interface SwarmTally {
  readonly once: number;
  readonly more: number;
  readonly none: number;
  readonly firstAt?: number;
  readonly lastAt?: number;
}

export type SwarmRequest = { readonly tally: string } | 'close';
export type SwarmReply = { readonly opened: number } | { readonly tally: SwarmTally };

interface Socket {
  readonly counts: Map<string, number>;
  /** When its first PUBLISH of each topic arrived. */
  readonly firstAt: Map<string, number>;
}

/** Epoch milliseconds with sub-millisecond resolution. */
const now = () => performance.timeOrigin + performance.now();

/** The Remaining Length at `offset` (after the first byte): its value and the bytes it took. */
function remainingLength(bytes: Buffer, offset: number): [value: number, size: number] | undefined {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    const byte = bytes[offset + i];
    if (byte === undefined) return undefined;
    value += (byte & 0x7f) * 128 ** i;
    if (byte < 0x80) return [value, i + 1];
  }
  return undefined;
}

/** Counts the PUBLISH packets of one frame (one or more whole packets, per the wire contract). */
function take(socket: Socket, frame: string): void {
  const bytes = Buffer.from(frame, 'base64');
  let offset = 0;
  while (offset < bytes.length) {
    const header = remainingLength(bytes, offset + 1);
    if (!header) return;
    const body = offset + 1 + header[1];
    if ((bytes[offset] ?? 0) >> 4 === 3) {
      const topicLength = bytes.readUInt16BE(body);
      const topic = bytes.toString('utf8', body + 2, body + 2 + topicLength);
      socket.counts.set(topic, (socket.counts.get(topic) ?? 0) + 1);
      if (!socket.firstAt.has(topic)) socket.firstAt.set(topic, now());
    }
    offset = body + header[0];
  }
}

async function open(url: string, sockets: Socket[], live: WebSocket[]): Promise<void> {
  const ws = new WebSocket(url, ['mqtt']);
  const socket: Socket = { counts: new Map(), firstAt: new Map() };
  ws.on('message', (data) => take(socket, data.toString()));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  sockets.push(socket);
  live.push(ws);
}

function tally(sockets: readonly Socket[], topic: string): SwarmTally {
  let once = 0;
  let more = 0;
  let firstAt = Number.POSITIVE_INFINITY;
  let lastAt = 0;
  for (const socket of sockets) {
    const count = socket.counts.get(topic) ?? 0;
    if (count === 1) once++;
    if (count > 1) more++;
    const at = socket.firstAt.get(topic);
    if (at !== undefined) {
      firstAt = Math.min(firstAt, at);
      lastAt = Math.max(lastAt, at);
    }
  }
  return {
    once,
    more,
    none: sockets.length - once - more,
    ...(lastAt > 0 ? { firstAt, lastAt } : {}),
  };
}

if (process.send) {
  const [url = '', countText = '0'] = process.argv.slice(2);
  const count = Number(countText);
  const sockets: Socket[] = [];
  const live: WebSocket[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      while (next < count) {
        next++;
        await open(url, sockets, live);
      }
    }),
  );
  process.send({ opened: sockets.length } satisfies SwarmReply);
  process.on('message', (message: SwarmRequest) => {
    if (message === 'close') {
      for (const ws of live) ws.terminate();
      process.disconnect();
    } else process.send?.({ tally: tally(sockets, message.tally) } satisfies SwarmReply);
  });
}
