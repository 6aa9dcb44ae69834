/**
 * Nimbus client transport: lets stock MQTT.js (v5) speak the Nimbus wire contract, i.e. MQTT packets
 * as padded base64 in WebSocket text frames with subprotocol `mqtt`, which API Gateway accepts
 * where MQTT.js's own binary frames are closed with 1003.
 *
 * Published as `nimbus-mqtt-client` (packages/client, docs/adr/0013-client-package.md), whose
 * browser builds leave `ws` out. Bundling these sources directly (the `ws` package is only imported
 * dynamically, on the Node path; marking it external keeps even its browser stub out of the bundle):
 *
 *   npx esbuild client/index.ts --bundle --platform=browser --format=esm --external:ws \
 *     --outfile=/tmp/nimbus-client.js
 *
 * Without `--external:ws` the build works too: esbuild then bundles `ws`'s tiny browser stub, which
 * is never called because browsers take `globalThis.WebSocket`.
 */
import type { IClientOptions, MqttClient as MqttClientType, StreamBuilder } from 'mqtt';
// MQTT.js's browser build only has a default export, so named imports would break browser bundles.
import mqtt from 'mqtt';
import { PacketTooLargeError } from '../shared/protocol/wire.js';
import { NimbusStream, type NimbusStreamOptions } from './stream.js';
import type { WebSocketConstructor } from './websocket.js';

export type { IClientOptions, MqttClient } from 'mqtt';
// The wire contract's codec and limits, shared with the broker and the bridge.
export {
  BROWSER_MAX_FRAME_BYTES,
  decodeFrame,
  encodeFrame,
  GATEWAY_FRAME_LIMIT,
  GATEWAY_MESSAGE_LIMIT,
  MAX_FRAME_BYTES,
  messageFragments,
  NimbusFramingError,
  type NimbusFramingErrorCode,
  PacketFramer,
  PacketTooLargeError,
  planFrames,
  SUBPROTOCOL,
  splitPackets,
} from '../shared/protocol/wire.js';
export {
  NimbusStream,
  type NimbusStreamOptions,
  NimbusTransportError,
  type NimbusTransportErrorCode,
} from './stream.js';
export type { WebSocketConstructor, WebSocketLike } from './websocket.js';

/** MQTT.js client options plus the WebSocket class to use. */
export type NimbusClientOptions = IClientOptions & {
  /** WebSocket class; defaults to `ws` in Node and `globalThis.WebSocket` in browsers. */
  WebSocket?: WebSocketConstructor;
};

/**
 * Creates the transport stream for one connection attempt; hand it to MQTT.js as a stream builder.
 * MQTT.js calls the builder again on every reconnect, so each call opens a fresh WebSocket.
 *
 * @example
 * import mqtt from 'mqtt';
 * const url = 'wss://abc.execute-api.eu-west-1.amazonaws.com/prod';
 * const client = new mqtt.MqttClient(() => createNimbusStream(url, {}), { protocolVersion: 5 });
 */
export function createNimbusStream(url: string, options: NimbusStreamOptions = {}): NimbusStream {
  return new NimbusStream(url, options);
}

/**
 * Fails the callback of a QoS > 0 packet the transport refused, instead of leaving it waiting for
 * an acknowledgement that cannot come (and resending it on every reconnect).
 */
function settleRefusedPacket(client: MqttClientType, error: Error): void {
  if (!(error instanceof PacketTooLargeError) || error.messageId === undefined) return;
  const pending = client.outgoing[error.messageId];
  if (!pending) return;
  const { cb } = pending;
  pending.cb = () => cb(error);
  client.removeOutgoingMessage(error.messageId);
}

/**
 * Connects an MQTT.js client to a Nimbus broker (the API Gateway stage URL) and reconnects the way
 * MQTT.js does (`reconnectPeriod`, default 1 s). `transformWsUrl` is honoured on every attempt,
 * e.g. to refresh a signed URL. Packets over the gateway's 128 KB limit are refused with an
 * 'error' event; a QoS 1/2 publish also fails its callback (so `publishAsync` rejects).
 *
 * @example
 * const client = connect('wss://abc.execute-api.eu-west-1.amazonaws.com/prod', { protocolVersion: 5 });
 * client.on('error', (error) => console.error(error.message));
 * client.on('connect', () => client.publish('sensors/1', '21.5', { qos: 1 }));
 */
export function connect(url: string, options: NimbusClientOptions = {}): MqttClientType {
  const protocol = new URL(url).protocol;
  if (protocol !== 'wss:' && protocol !== 'ws:') {
    throw new TypeError(`a Nimbus URL starts with wss:// (or ws:// locally), not ${protocol}//`);
  }
  const { WebSocket, ...clientOptions } = options;
  const builder: StreamBuilder = (client) => {
    const target = clientOptions.transformWsUrl
      ? clientOptions.transformWsUrl(url, client.options, client)
      : url;
    const stream = createNimbusStream(target, { WebSocket, wsOptions: clientOptions.wsOptions });
    stream.on('error', (error: Error) => settleRefusedPacket(client, error));
    return stream;
  };
  return new mqtt.MqttClient(builder, clientOptions);
}
