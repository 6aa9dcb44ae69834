import { once } from 'node:events';
import { createServer } from 'node:net';
// CommonJS: module.exports is the constructor, with createBroker on it; TypeScript (NodeNext) types the
// default import as that module object, so createBroker is the form both agree on.
import aedesModule from 'aedes';
import type { IClientOptions, MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import { connect as connectNimbus } from '../client/index.js';
import { type Emulator, type EmulatorOptions, startEmulator } from '../emulator/index.js';

/** A broker under test: how to open a client to it and how to shut it down. */
export interface Broker {
  name: 'nimbus' | 'aedes' | 'mosquitto';
  url: string;
  /** Time from the start call to a broker that accepts clients. */
  readyMs: number;
  /** `clean: false` asks for a persistent session (clean session 0); the default is a clean one. */
  connect(clientId: string, options?: { clean?: boolean; keepalive?: number }): Promise<MqttClient>;
  stop(): Promise<void>;
}

// Same options for both brokers. A long keep-alive (still under the gateway's 10-minute idle limit)
// keeps PINGREQs out of the per-message meter; no reconnects, so a broken connection shows as losses.
export const clientOptions: IClientOptions = {
  protocolVersion: 4,
  clean: true,
  keepalive: 300,
  reconnectPeriod: 0,
  connectTimeout: 30_000,
};

export async function untilConnected(client: MqttClient, url: string): Promise<MqttClient> {
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error(`connection to ${url} closed before CONNACK`)));
    });
    return client;
  } catch (error) {
    client.end(true);
    throw error;
  }
}

/** `options` override the emulator's (e.g. `streamPollIntervalMs`, AWS's 250 ms by default). */
export async function startNimbus(options: EmulatorOptions = {}): Promise<Broker & { emulator: Emulator }> {
  const started = performance.now();
  // The keep-alive check (docs/adr/0015-keep-alive-deadlines.md) and the once-a-minute sweep, with the
  // `$SYS/` figures it publishes, are fixed monthly costs, not per-message ones: a minute's sweep in a
  // 30-publish scaled-down run would be billed as half a write per publish.
  const emulator = await startEmulator({
    port: 0,
    log: () => {},
    keepAliveCheckIntervalMs: 0,
    sweepIntervalMs: 0,
    ...options,
  });
  const readyMs = performance.now() - started;
  return {
    name: 'nimbus',
    url: emulator.url,
    readyMs,
    emulator,
    connect: (clientId, options) =>
      untilConnected(connectNimbus(emulator.url, { ...clientOptions, ...options, clientId }), emulator.url),
    stop: async () => {
      // The emulator's gateway must see the clients' sockets close before it stops: a close that
      // lands after its server closed makes it throw from the socket's event handler.
      const deadline = performance.now() + 10_000;
      while (emulator.gateway.connectionIds.length > 0 && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await emulator.stop();
    },
  };
}

/** Aedes with its default in-memory persistence, plain MQTT over TCP on 127.0.0.1. */
export async function startAedes(): Promise<Broker> {
  const started = performance.now();
  const aedes = aedesModule.createBroker();
  const server = createServer(aedes.handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('Aedes server has no TCP address');
  const url = `mqtt://127.0.0.1:${address.port}`;
  const readyMs = performance.now() - started;
  return {
    name: 'aedes',
    url,
    readyMs,
    connect: (clientId, options) =>
      untilConnected(mqtt.connect(url, { ...clientOptions, ...options, clientId }), url),
    stop: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
