import { clientOptions } from '../brokers.js';
import { floorBill, iotCoreBill, nimbusBill, type WorkloadSpec } from '../economics.js';
import {
  type BenchContext,
  type CostOutcome,
  callsPer,
  closeAll,
  connectMany,
  metered,
  sleep,
  unitsPer,
  usdWithoutConnections,
} from './common.js';
import { describeShortfall, FleetWatch, type Shortfall, waitFor } from './run-health.js';

/** How long a run waits for SUBACKs, and for the last PUBACKs and deliveries after publishing stops. */
const connectWaitMs = 30_000;
const drainWaitMs = 30_000;

/** A traffic workload as run: `publishers` each publish every `periodMs`, `subscribers` take them all. */
export interface TrafficRun {
  name: string;
  title: string;
  /** The full-size workload the bill is extrapolated to. */
  spec: WorkloadSpec;
  publishers: number;
  subscribers: number;
  periodMs: number;
  seconds: number;
  topic: (publisher: number) => string;
  filter: string;
  payload: () => Buffer;
  scaled: string;
}

/**
 * How a scaled-down fleet keeps the full workload's aggregate rate: each of the fewer publishers
 * publishes as much more often as there are fewer of them, so the frame queue's batches (several
 * connections' frames per invocation) and the stream's are what the full-size workload would see;
 * its keep-alive shrinks by the same factor, so keep-alive writes per publish stay those of the full
 * workload too. The units are metered as run, nothing is computed.
 *
 * @example
 * fullRate({ publishers: 100, periodMs: 10_000, spec: { publishesPerSecond: 100 } }); // { periodMs: 1000, keepalive: 30 }
 */
export function fullRate(
  run: Pick<TrafficRun, 'publishers' | 'periodMs'> & { spec: Pick<TrafficRun['spec'], 'publishesPerSecond'> },
): { periodMs: number; keepalive: number } {
  const periodMs = Math.min(run.periodMs, (run.publishers * 1000) / run.spec.publishesPerSecond);
  const fullKeepAlive = clientOptions.keepalive ?? 300;
  return { periodMs, keepalive: Math.max(1, Math.round((fullKeepAlive * periodMs) / run.periodMs)) };
}

/**
 * Runs publishers and subscribers against Nimbus at the workload's full aggregate rate (`fullRate`) for `seconds`, meters it,
 * and prices it three ways. Connects and subscribes happen before the meter starts: they are paid once,
 * not per message.
 */
export async function runTraffic(ctx: BenchContext, run: TrafficRun): Promise<CostOutcome> {
  const { nimbus, progress } = ctx;
  const { qos } = run.spec;
  const { periodMs, keepalive } = ctx.fullRate
    ? fullRate(run)
    : { periodMs: run.periodMs, keepalive: clientOptions.keepalive ?? 300 };
  progress(
    `[${run.name}] connecting ${run.subscribers} subscriber(s) and ${run.publishers} publisher(s), ` +
      `each publishing every ${periodMs} ms (${(run.publishers * 1000) / periodMs}/s in all), keep-alive ${keepalive} s`,
  );
  const subscribers = await connectMany(nimbus, `${run.name}-sub`, run.subscribers);
  const publishers = await connectMany(nimbus, `${run.name}-pub`, run.publishers, { keepalive });
  const watch = new FleetWatch(publishers, subscribers);
  try {
    const subscribed = Promise.all(subscribers.map((s) => s.subscribeAsync(run.filter, { qos })));
    if (!(await Promise.race([subscribed.then(() => true), sleep(connectWaitMs).then(() => false)])))
      throw new Error(`[${run.name}] subscribers got no SUBACK within ${connectWaitMs / 1000} s`);
    let deliveries = 0;
    for (const s of subscribers) s.on('message', () => deliveries++);
    progress(`[${run.name}] publishing for ${run.seconds} s at QoS ${qos}`);
    const queue = nimbus.emulator.frameQueue.received;
    const queueBefore = { ...queue };
    let unsent = 0;
    // QoS 1 publishes awaiting their PUBACK, per publisher.
    const awaiting = publishers.map(() => 0);
    // This process runs the emulator's gateway, queue, stream poller and function workers (DynamoDB
    // Local apart): its CPU per publish says what rate a machine's cores can carry.
    let cpuMs = 0;
    let wallMs = 1;
    const { delta } = await metered(nimbus.emulator, async () => {
      const cpuBefore = process.cpuUsage();
      const startedAt = performance.now();
      const stops: Array<() => void> = [];
      publishers.forEach((client, i) => {
        // Spread the fleet over the period, as independent devices would be.
        const start = setTimeout(
          () => {
            const tick = () => {
              // A device whose connection is gone does not publish (the bench does not reconnect).
              if (!watch.alive(client) || !client.connected) {
                unsent++;
                return;
              }
              awaiting[i]++;
              client
                .publishAsync(run.topic(i), run.payload(), { qos })
                .catch(() => undefined)
                .finally(() => awaiting[i]--);
            };
            tick();
            const every = setInterval(tick, periodMs);
            stops.push(() => clearInterval(every));
          },
          (i * periodMs) / run.publishers,
        );
        stops.push(() => clearTimeout(start));
      });
      await sleep(run.seconds * 1000);
      for (const stop of stops) stop();
      // Bounded: a publish of a lost connection never settles, and a delivery may never come.
      await waitFor(
        () =>
          publishers.every((c, i) => awaiting[i] === 0 || !watch.alive(c)) &&
          (deliveries >= watch.published * run.subscribers || !subscribers.some((s) => watch.alive(s))),
        drainWaitMs,
      );
      const cpu = process.cpuUsage(cpuBefore);
      cpuMs = (cpu.user + cpu.system) / 1000;
      wallMs = performance.now() - startedAt;
    });
    const expected = watch.published * run.subscribers;
    const shortfall: Shortfall = {
      lost: watch.lost(),
      unsent,
      unacknowledged: qos === 1 ? awaiting.reduce((sum, n) => sum + n, 0) : 0,
      missing: Math.max(0, expected - deliveries),
      expected,
    };
    // Units are per publish that reached the wire: what the emulator was given to carry.
    const publishes = Math.max(1, watch.published);
    const shortfallText = describeShortfall(shortfall, run);
    if (shortfallText) progress(`[${run.name}] incomplete run: ${shortfallText}`);
    const usdPerPublish = usdWithoutConnections(delta) / publishes;
    const callsPerPublish = callsPer(delta, publishes);
    const batches = queue.batches - queueBefore.batches;
    const frames = queue.messages - queueBefore.messages;
    const frameQueue = {
      framesPerBatch: frames / Math.max(1, batches),
      meanWaitMs: (queue.waitMs - queueBefore.waitMs) / Math.max(1, frames),
    };
    progress(
      `[${run.name}] frame queue: ${frameQueue.framesPerBatch.toFixed(2)} frames per batch, ` +
        `${frameQueue.meanWaitMs.toFixed(0)} ms mean wait from send to receive` +
        (frameQueue.meanWaitMs > 100
          ? ' (the emulator fell behind: batches are fuller than AWS would form at this rate)'
          : ''),
    );
    progress(
      `[${run.name}] CPU of this process (the emulator's gateway, queue and functions, and the clients; ` +
        `DynamoDB Local apart): ${(cpuMs / publishes).toFixed(1)} ms per publish (its idle work, such as stream polls, included), ${(cpuMs / wallMs).toFixed(2)} cores`,
    );
    progress(
      `[${run.name}] calls per publish: ${Object.entries(callsPerPublish)
        .map(([call, n]) => `${call} ${n.toFixed(3)}`)
        .join(', ')}`,
    );
    return {
      kind: 'cost',
      name: run.name,
      title: run.title,
      spec: run.spec,
      scaled:
        periodMs < run.periodMs
          ? `${run.scaled}, each every ${periodMs / 1000} s: the full ${run.spec.publishesPerSecond}/s`
          : run.scaled,
      measured: {
        publishes,
        deliveries,
        ...(shortfallText ? { shortfall: shortfallText } : {}),
        perPublish: unitsPer(delta, publishes),
        callsPerPublish,
        frameQueue,
      },
      nimbus: nimbusBill(run.spec, { usdPerPublish }),
      iotCore: iotCoreBill(run.spec),
      floor: floorBill(run.spec),
    };
  } finally {
    await closeAll([...publishers, ...subscribers]);
  }
}
