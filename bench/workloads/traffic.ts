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
 * Runs publishers and subscribers against Nimbus at the workload's real rate for `seconds`, meters it,
 * and prices it three ways. Connects and subscribes happen before the meter starts: they are paid once,
 * not per message.
 */
export async function runTraffic(ctx: BenchContext, run: TrafficRun): Promise<CostOutcome> {
  const { nimbus, progress } = ctx;
  const { qos } = run.spec;
  progress(`[${run.name}] connecting ${run.subscribers} subscriber(s) and ${run.publishers} publisher(s)`);
  const subscribers = await connectMany(nimbus, `${run.name}-sub`, run.subscribers);
  const publishers = await connectMany(nimbus, `${run.name}-pub`, run.publishers);
  try {
    await Promise.all(subscribers.map((s) => s.subscribeAsync(run.filter, { qos })));
    let deliveries = 0;
    for (const s of subscribers) s.on('message', () => deliveries++);
    progress(`[${run.name}] publishing for ${run.seconds} s at QoS ${qos}`);
    const { value: publishes, delta } = await metered(nimbus.emulator, async () => {
      let sent = 0;
      const sends: Promise<unknown>[] = [];
      const stops: Array<() => void> = [];
      publishers.forEach((client, i) => {
        // Spread the fleet over the period, as independent devices would be.
        const start = setTimeout(
          () => {
            const tick = () => {
              sent++;
              sends.push(client.publishAsync(run.topic(i), run.payload(), { qos }).catch(() => undefined));
            };
            tick();
            const every = setInterval(tick, run.periodMs);
            stops.push(() => clearInterval(every));
          },
          (i * run.periodMs) / run.publishers,
        );
        stops.push(() => clearTimeout(start));
      });
      await sleep(run.seconds * 1000);
      for (const stop of stops) stop();
      await Promise.all(sends);
      const expected = sent * run.subscribers;
      const deadline = Date.now() + 30_000;
      while (deliveries < expected && Date.now() < deadline) await sleep(100);
      if (deliveries < expected)
        progress(`[${run.name}] ${expected - deliveries} of ${expected} deliveries missing`);
      return sent;
    });
    const usdPerPublish = usdWithoutConnections(delta) / publishes;
    const callsPerPublish = callsPer(delta, publishes);
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
      scaled: run.scaled,
      measured: { publishes, deliveries, perPublish: unitsPer(delta, publishes), callsPerPublish },
      nimbus: nimbusBill(run.spec, { usdPerPublish }),
      iotCore: iotCoreBill(run.spec),
      floor: floorBill(run.spec),
    };
  } finally {
    await closeAll([...publishers, ...subscribers]);
  }
}
