/**
 * The emulator's `/metrics` endpoint: the meter's billed units, their estimated cost, MQTT traffic
 * as it crosses the gateway, live gauges and a publish-to-deliver histogram split into stages, in
 * the Prometheus text exposition format (emulator/exposition.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type AttributeValue, type DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBRecord, DynamoDBStreamEvent, SQSEvent } from 'aws-lambda';
import { eventTypeAttribute } from '../shared/frame-queue.js';
import { NimbusFramingError, packetSize } from '../shared/protocol/wire.js';
import {
  exposition,
  expositionContentType,
  Histogram,
  type Labels,
  type MetricFamily,
} from './exposition.js';
import type { GatewayTraffic } from './gateway.js';
import type { MeterReading } from './meter.js';
import { bill, priceSource } from './prices.js';
import { PublishTraces, type TracedMessage } from './publish-traces.js';

/** MQTT control packet types by their number (the fixed header's high nibble). */
const packetTypes = [
  'reserved',
  'connect',
  'connack',
  'publish',
  'puback',
  'pubrec',
  'pubrel',
  'pubcomp',
  'subscribe',
  'suback',
  'unsubscribe',
  'unsuback',
  'pingreq',
  'pingresp',
  'disconnect',
  'auth',
] as const;

/**
 * The packet types of one frame (base64 of whole packets), read from each fixed header without
 * decoding the packets; what a malformed frame holds past its last good header is left out.
 */
export function framePacketTypes(frame: string): string[] {
  const bytes = Buffer.from(frame, 'base64');
  const types: string[] = [];
  let offset = 0;
  try {
    while (offset < bytes.length) {
      const size = packetSize(bytes.subarray(offset, offset + 5));
      if (size === undefined) break;
      types.push(packetTypes[bytes[offset] >> 4]);
      offset += size;
    }
  } catch (error) {
    if (!(error instanceof NimbusFramingError)) throw error;
  }
  return types;
}

const countPublishes = (frame: string) => framePacketTypes(frame).filter((t) => t === 'publish').length;

/** Where a PUBLISH spends its time between the publisher's frame and the subscriber's. */
export const publishStages = ['frame_queue', 'message_handler', 'stream_wait', 'fanout', 'post'] as const;
export type PublishStage = (typeof publishStages)[number];

/**
 * What the emulator observes of MQTT traffic from outside the broker: packets crossing the gateway,
 * and the stages of each PUBLISH, timed around the invocations that carry it.
 */
export class TrafficMetrics implements GatewayTraffic {
  private readonly packets = new Map<string, number>();
  private readonly stages = new Map<PublishStage, Histogram>(
    publishStages.map((stage) => [stage, new Histogram()]),
  );
  /** The same stages per message, joined (emulator/publish-traces.ts). */
  readonly traces = new PublishTraces();

  /** `clientIdOf` names a connection's client (from its CONNECT), to join a frame to its stored message. */
  constructor(private readonly clientIdOf: (connectionId: string) => string | undefined = () => undefined) {}

  inbound(body: string): void {
    this.countPackets('in', body);
  }

  outbound(body: string, elapsedMs: number): void {
    const publishes = this.countPackets('out', body);
    for (let i = 0; i < publishes; i++) this.observe('post', elapsedMs);
  }

  /**
   * Invokes the message function with a frame-queue batch: per PUBLISH, its wait in the queue
   * (sent → invoked) and the invocation that handled it.
   */
  async messageBatch<T>(event: SQSEvent, invoke: () => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    const frames = event.Records.filter(
      (record) => record.messageAttributes[eventTypeAttribute] === undefined,
    ).map((record) => ({
      clientId: this.clientIdOf(record.attributes.MessageGroupId ?? '') ?? '',
      waitMs: Math.max(0, startedAt - Number(record.attributes.SentTimestamp)),
      publishes: countPublishes(record.body),
    }));
    const queued = frames.flatMap((frame) => Array<number>(frame.publishes).fill(frame.waitMs));
    for (const waited of queued) this.observe('frame_queue', waited);
    const ended = this.traces.messageInvocation(
      startedAt,
      frames.filter((f) => f.publishes > 0),
    );
    const started = performance.now();
    try {
      return await invoke();
    } finally {
      const took = performance.now() - started;
      ended(took);
      for (const _ of queued) this.observe('message_handler', took);
    }
  }

  /**
   * Invokes the fan-out with a stream batch: per stored message, its wait from being published
   * (the broker's `publishedAt`) to the fan-out's invocation, and that invocation.
   */
  async fanoutBatch<T>(event: DynamoDBStreamEvent, invoke: () => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    const published = event.Records.map(storedMessage).filter((m) => m !== undefined);
    for (const { publishedAt } of published) this.observe('stream_wait', startedAt - publishedAt);
    const ended = this.traces.fanoutInvocation(startedAt, published);
    const started = performance.now();
    try {
      return await invoke();
    } finally {
      const took = performance.now() - started;
      ended(took);
      for (const _ of published) this.observe('fanout', took);
    }
  }

  /** Forgets everything counted so far, with the meter. */
  reset(): void {
    this.packets.clear();
    this.traces.reset();
    for (const stage of publishStages) this.stages.set(stage, new Histogram());
  }

  /** Packets seen, keyed `direction/type`. */
  packetCount(direction: 'in' | 'out', type: string): number {
    return this.packets.get(`${direction}/${type}`) ?? 0;
  }

  families(): MetricFamily[] {
    const packets = [...this.packets].map(([key, value]) => {
      const [direction, type] = key.split('/');
      return { labels: { direction, type }, value };
    });
    return [
      counter('nimbus_mqtt_publishes_total', 'PUBLISH packets clients sent, as they crossed the gateway.', [
        { value: this.packetCount('in', 'publish') },
      ]),
      counter(
        'nimbus_mqtt_deliveries_total',
        'PUBLISH packets posted to clients, as they crossed the gateway.',
        [{ value: this.packetCount('out', 'publish') }],
      ),
      counter('nimbus_mqtt_packets_total', 'MQTT control packets crossing the gateway, by type.', packets),
      {
        name: 'nimbus_publish_stage_seconds',
        help: 'Time a PUBLISH spends in each stage: frame_queue (sent to the queue -> message function invoked), message_handler (that invocation), stream_wait (stored -> fan-out invoked), fanout (that invocation), post (management API POST received -> frame written to the subscriber).',
        type: 'histogram',
        series: publishStages.map((stage) => ({
          labels: { stage },
          value: this.stages.get(stage)?.snapshot() ?? new Histogram().snapshot(),
        })),
      },
    ];
  }

  private observe(stage: PublishStage, ms: number): void {
    this.stages.get(stage)?.observe(Math.max(0, ms) / 1000);
  }

  private countPackets(direction: 'in' | 'out', body: string): number {
    let publishes = 0;
    for (const type of framePacketTypes(body)) {
      const key = `${direction}/${type}`;
      this.packets.set(key, (this.packets.get(key) ?? 0) + 1);
      if (type === 'publish') publishes++;
    }
    return publishes;
  }
}

/** The publisher, id and `publishedAt` of a stream record's new image (DynamoDB JSON), if it is a message. */
function storedMessage(record: DynamoDBRecord): TracedMessage | undefined {
  if (record.eventName !== 'INSERT') return undefined;
  const image = record.dynamodb?.NewImage;
  const publishedAt = Number(image?.publishedAt?.N);
  if (!Number.isFinite(publishedAt)) return undefined;
  return { publisher: image?.publisher?.S ?? '', messageId: image?.messageId?.S ?? '', publishedAt };
}

function counter(
  name: string,
  help: string,
  samples: Array<{ labels?: Labels; value: number }>,
): MetricFamily {
  return { name, help, type: 'counter', samples };
}

function byLabel(label: string, record: Readonly<Record<string, number>>) {
  return Object.entries(record).map(([key, value]) => ({ labels: { [label]: key }, value }));
}

/** Live figures read at scrape time. */
export interface Gauges {
  readonly connections: number;
  /** Undefined when the table could not be counted; the sample is left out rather than faked. */
  readonly subscriptions: number | undefined;
}

/**
 * The meter's billed units and their estimated cost as metric families.
 *
 * @example
 * exposition([...meterFamilies(meter.read()), ...traffic.families()]);
 */
export function meterFamilies(reading: MeterReading): MetricFamily[] {
  const { gateway, dynamodb } = reading;
  const lambda = Object.entries(reading.lambda);
  return [
    counter('nimbus_gateway_messages_total', 'WebSocket messages through the gateway, by direction.', [
      { labels: { direction: 'in' }, value: gateway.messagesIn },
      { labels: { direction: 'out' }, value: gateway.messagesOut },
    ]),
    counter(
      'nimbus_gateway_billed_messages_total',
      'API Gateway billed messages: one per 32 KB of each WebSocket message.',
      [{ value: gateway.billedMessages }],
    ),
    counter(
      'nimbus_gateway_connection_minutes_total',
      'API Gateway connection-minutes, open connections included.',
      [{ value: gateway.connectionMinutes }],
    ),
    counter(
      'nimbus_lambda_requests_total',
      'Lambda invocations, by function.',
      lambda.map(([fn, l]) => ({ labels: { function: fn }, value: l.requests })),
    ),
    counter(
      'nimbus_lambda_gb_seconds_total',
      'Lambda compute in GB-seconds (duration rounded up to 1 ms x memory), by function.',
      lambda.map(([fn, l]) => ({ labels: { function: fn }, value: l.gbSeconds })),
    ),
    counter(
      'nimbus_dynamodb_requests_total',
      'DynamoDB data-plane requests, by operation.',
      byLabel('operation', dynamodb.requests),
    ),
    counter('nimbus_dynamodb_read_units_total', 'DynamoDB read request units consumed.', [
      { value: dynamodb.readUnits },
    ]),
    counter('nimbus_dynamodb_write_units_total', 'DynamoDB write request units consumed.', [
      { value: dynamodb.writeUnits },
    ]),
    counter(
      'nimbus_sqs_requests_total',
      'SQS API calls on the frame queue, by operation.',
      byLabel('operation', reading.sqs?.requests ?? {}),
    ),
    counter(
      'nimbus_sqs_billed_requests_total',
      'SQS billed requests: one per 64 KB of payload of each call.',
      [{ value: reading.sqs?.billedRequests ?? 0 }],
    ),
    counter(
      'nimbus_cost_usd_total',
      `Estimated cost in USD of the units above, by service, at ${priceSource.region} on-demand list prices of ${priceSource.date} (emulator/prices.ts), free tier ignored.`,
      bill(reading).map((line) => ({ labels: { service: line.service }, value: line.usd })),
    ),
  ];
}

/** The live gauges as metric families. */
export function gaugeFamilies(gauges: Gauges): MetricFamily[] {
  return [
    {
      name: 'nimbus_connections',
      help: 'Open WebSocket connections.',
      type: 'gauge',
      samples: [{ value: gauges.connections }],
    },
    {
      name: 'nimbus_subscriptions',
      help: 'Subscriptions stored in the broker tables (counted at most every few seconds).',
      type: 'gauge',
      samples: gauges.subscriptions === undefined ? [] : [{ value: gauges.subscriptions }],
    },
  ];
}

/**
 * A value fetched at most once per `ttlMs`; concurrent reads share one fetch, and a failed fetch
 * reads as undefined until the next try.
 *
 * @example
 * const subscriptions = cached(() => countItems(table), 5_000);
 * await subscriptions(); // 12
 */
export function cached<T>(fetch: () => Promise<T>, ttlMs: number): () => Promise<T | undefined> {
  let value: Promise<T | undefined> | undefined;
  let fetchedAt = 0;
  return () => {
    if (!value || Date.now() - fetchedAt >= ttlMs) {
      fetchedAt = Date.now();
      value = fetch().catch(() => undefined);
    }
    return value;
  };
}

/** Items in a table, by a paginated `Scan` with `Select: COUNT`: nothing but the count comes back. */
export async function countItems(client: DynamoDBClient, tableName: string): Promise<number> {
  let total = 0;
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(
      new ScanCommand({ TableName: tableName, Select: 'COUNT', ExclusiveStartKey: start }),
    );
    total += page.Count ?? 0;
    start = page.LastEvaluatedKey;
  } while (start);
  return total;
}

export interface MetricsSources {
  readonly meter: () => MeterReading;
  readonly traffic: TrafficMetrics;
  readonly gauges: () => Promise<Gauges>;
}

/**
 * The `GET /metrics` handler: everything above in one exposition, read fresh at each scrape.
 *
 * @example
 * new Gateway({ …, routes: { '/metrics': metricsEndpoint({ meter, traffic, gauges }) } });
 */
export function metricsEndpoint(
  sources: MetricsSources,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
      res.end('Only GET /metrics is served here.\n');
      return;
    }
    sources
      .gauges()
      .then((gauges) => {
        const text = exposition([
          ...meterFamilies(sources.meter()),
          ...sources.traffic.families(),
          ...gaugeFamilies(gauges),
        ]);
        res.writeHead(200, { 'content-type': expositionContentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      })
      .catch((error: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`Could not collect the metrics: ${error.message}\n`);
      });
  };
}
