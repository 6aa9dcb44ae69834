/**
 * The arithmetic of a workload's monthly bill, pure: Nimbus from the units it was measured to use,
 * AWS IoT Core from its published metering, and the floor — what the API Gateway messages and
 * connection-minutes that no design on API Gateway can avoid cost on their own.
 */
import { iotCorePrices, prices } from '../emulator/prices.js';

/** A 30-day month, in seconds and minutes. */
export const secondsPerMonth = 30 * 24 * 3600;
export const minutesPerMonth = secondsPerMonth / 60;

/** API Gateway bills WebSocket messages in 32 KB units. */
const gatewayUnitBytes = 32 * 1024;

/** A workload at full size: what it sends, to how many, over how many connections. */
export interface WorkloadSpec {
  /** Connections held all month (devices, backends, subscribers). */
  connections: number;
  /** Publishes per second across the fleet; 0 for an idle fleet. */
  publishesPerSecond: number;
  /** Subscribers each publish is delivered to. */
  deliveriesPerPublish: number;
  topicBytes: number;
  payloadBytes: number;
  qos: 0 | 1;
  /** Keep-alive in seconds when the fleet pings (idle); pings of busy clients are left out. */
  keepAliveSeconds?: number;
}

/** A bill split the way the report prints it: traffic per million publishes and the whole month. */
export interface Bill {
  /** USD for a million publishes with their deliveries; connection-minutes excluded. */
  perMillion: number;
  /** USD for a month of the workload at full size, connection-minutes included. */
  perMonth: number;
}

/** Bytes of an MQTT 3.1.1 PUBLISH packet: fixed header, topic, packet id at QoS > 0, payload. */
export function publishPacketBytes(topicBytes: number, payloadBytes: number, qos: 0 | 1): number {
  const remaining = 2 + topicBytes + (qos > 0 ? 2 : 0) + payloadBytes;
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4;
  return 1 + lengthBytes + remaining;
}

/** API Gateway units for one MQTT packet on the wire contract (base64 in a text frame). */
export function gatewayUnits(packetBytes: number): number {
  return Math.max(1, Math.ceil((Math.ceil(packetBytes / 3) * 4) / gatewayUnitBytes));
}

/** IoT Core messages for one PUBLISH: topic + payload in 5 KB increments. */
export function iotCoreUnits(topicBytes: number, payloadBytes: number): number {
  return Math.max(1, Math.ceil((topicBytes + payloadBytes) / iotCorePrices.messageUnitBytes));
}

const publishesPerMonth = (spec: WorkloadSpec) => spec.publishesPerSecond * secondsPerMonth;
const pingsPerMonth = (spec: WorkloadSpec) =>
  spec.keepAliveSeconds ? (spec.connections * secondsPerMonth) / spec.keepAliveSeconds : 0;

/**
 * AWS IoT Core's bill: each publish received and each delivery in 5 KB increments; at QoS 1 each
 * subscriber's PUBACK is one more message (its own PUBACK to the publisher is not metered); pings
 * are free; connectivity per connection-minute.
 *
 * @example
 * iotCoreBill({ connections: 1, publishesPerSecond: 1, deliveriesPerPublish: 1, topicBytes: 5, payloadBytes: 10, qos: 0 }).perMillion; // 2
 */
export function iotCoreBill(spec: WorkloadSpec): Bill {
  const units = iotCoreUnits(spec.topicBytes, spec.payloadBytes);
  const perPublish =
    units + spec.deliveriesPerPublish * units + (spec.qos === 1 ? spec.deliveriesPerPublish : 0);
  const perMillion = perPublish * iotCorePrices.perMillionMessages;
  const connectivity = (spec.connections * minutesPerMonth * iotCorePrices.perMillionConnectionMinutes) / 1e6;
  return {
    perMillion,
    perMonth: (publishesPerMonth(spec) * perPublish * iotCorePrices.perMillionMessages) / 1e6 + connectivity,
  };
}

/**
 * The floor on API Gateway: the publish in, each delivery out, at QoS 1 the PUBACK back to the
 * publisher and each subscriber's PUBACK in, a PINGREQ and PINGRESP per keep-alive of an idle
 * client, and every connection-minute. Nothing Nimbus does behind the gateway is counted.
 */
export function floorBill(spec: WorkloadSpec): Bill {
  const units = gatewayUnits(publishPacketBytes(spec.topicBytes, spec.payloadBytes, spec.qos));
  const perPublish =
    units + spec.deliveriesPerPublish * units + (spec.qos === 1 ? 1 + spec.deliveriesPerPublish : 0);
  const perMillion = perPublish * prices.gatewayPerMillionMessages;
  const messages = publishesPerMonth(spec) * perPublish + 2 * pingsPerMonth(spec);
  const connectivity = (spec.connections * minutesPerMonth * prices.gatewayPerMillionConnectionMinutes) / 1e6;
  return { perMillion, perMonth: (messages * prices.gatewayPerMillionMessages) / 1e6 + connectivity };
}

/**
 * Nimbus's bill from what it was measured to cost: `usdPerPublish` (every service, connection-minutes
 * left out) and, for an idle fleet, `usdPerConnectionMinute` (its pings), scaled to the full month.
 */
export function nimbusBill(
  spec: WorkloadSpec,
  measured: { usdPerPublish: number; usdPerConnectionMinute?: number },
): Bill {
  const minutes = spec.connections * minutesPerMonth;
  const connectivity = (minutes * prices.gatewayPerMillionConnectionMinutes) / 1e6;
  return {
    perMillion: measured.usdPerPublish * 1e6,
    perMonth:
      publishesPerMonth(spec) * measured.usdPerPublish +
      minutes * (measured.usdPerConnectionMinute ?? 0) +
      connectivity,
  };
}
