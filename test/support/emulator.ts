import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { IClientOptions, MqttClient } from 'mqtt';
import { connect } from '../../client/index.js';
import { localCredentials, localRegion } from '../../emulator/dynamodb-local.js';
import { type Emulator, type EmulatorOptions, startEmulator } from '../../emulator/index.js';

// The functions deploy on Node.js 22+; the SDK's notice about this machine's Node 20 would drown the test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** One emulator per test file, with a quick stream poll so tests do not idle; diagnostics are kept for failures. */
export async function startTestEmulator(
  options: EmulatorOptions = {},
): Promise<Emulator & { logs: string[] }> {
  const logs: string[] = [];
  const emulator = await startEmulator({ streamPollIntervalMs: 50, log: (m) => logs.push(m), ...options });
  return Object.assign(emulator, { logs });
}

/** An MQTT.js client through the Nimbus transport, resolved once CONNACK arrived. */
export async function connectClient(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
  return client;
}

/** Collects messages a client receives. */
export function inbox(
  client: MqttClient,
): Array<{ topic: string; payload: string; qos: number; retain: boolean }> {
  const received: Array<{ topic: string; payload: string; qos: number; retain: boolean }> = [];
  client.on('message', (topic, payload, packet) =>
    received.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain }),
  );
  return received;
}

/** Polls until `check` holds, failing with `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A document client on the emulator's DynamoDB, for tests that look at or plant broker state. */
export function emulatorDatabase(emulator: Emulator): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: emulator.dynamoEndpoint,
      region: localRegion,
      credentials: localCredentials,
    }),
  );
}
