/**
 * Many bare wire-contract WebSocket clients in a process of their own, for tests with more
 * connections than one process has file descriptors for alongside the emulator's side of them.
 * Run with `node --import tsx test/support/socket-swarm.ts <url> <count>` as a child with IPC; it
 * answers `{ opened }` once all are open, and `{ received }` (PUBLISH packets per socket, by topic)
 * when sent `'report'`.
 */
import mqttPacket, { type Packet } from 'mqtt-packet';
import { WebSocket } from 'ws';

const [url, countText] = process.argv.slice(2);
const count = Number(countText);
const sockets: WebSocket[] = [];
const received: Array<Record<string, number>> = [];

async function open(index: number): Promise<void> {
  const socket = new WebSocket(url ?? '', ['mqtt']);
  const counts: Record<string, number> = {};
  received[index] = counts;
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (packet: Packet) => {
    if (packet.cmd === 'publish') counts[packet.topic] = (counts[packet.topic] ?? 0) + 1;
  });
  socket.on('message', (data) => parser.parse(Buffer.from(data.toString(), 'base64')));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  sockets.push(socket);
}

let next = 0;
await Promise.all(
  Array.from({ length: 100 }, async () => {
    while (next < count) await open(next++);
  }),
);
process.send?.({ opened: sockets.length });
process.on('message', (message) => {
  if (message === 'report') process.send?.({ received });
  if (message === 'close') {
    for (const socket of sockets) socket.terminate();
    process.disconnect();
  }
});
