import { floorBill, iotCoreBill, nimbusBill, type WorkloadSpec } from '../economics.js';
import {
  type BenchContext,
  type CostOutcome,
  closeAll,
  connectMany,
  metered,
  scaled,
  sleep,
  unitsPer,
  usdWithoutConnections,
} from './common.js';

const keepAliveSeconds = 60;

/**
 * W3: 1,000 devices connected with keep-alive 60 s and no traffic. What they cost beyond their
 * connection-minutes is their pings: the run meters a keep-alive period and a bit, and prices each
 * PINGREQ measured at the rate the keep-alive sets.
 */
export async function idle(ctx: BenchContext, seconds = keepAliveSeconds + 5): Promise<CostOutcome> {
  const devices = scaled(1000, ctx.scale);
  const spec: WorkloadSpec = {
    connections: 1000,
    publishesPerSecond: 0,
    deliveriesPerPublish: 0,
    topicBytes: 0,
    payloadBytes: 0,
    qos: 0,
    keepAliveSeconds,
  };
  ctx.progress(
    `[w3-idle] connecting ${devices} devices (keep-alive ${keepAliveSeconds} s), idling ${seconds} s`,
  );
  const clients = await connectMany(ctx.nimbus, 'w3-idle', devices, { keepalive: keepAliveSeconds });
  try {
    const { delta } = await metered(ctx.nimbus.emulator, () => sleep(seconds * 1000));
    // Every message in is a PINGREQ here.
    const pings = delta.gateway.messagesIn;
    const usdPerPing = pings ? usdWithoutConnections(delta) / pings : 0;
    return {
      kind: 'cost',
      name: 'w3-idle',
      title: 'W3 idle fleet, keep-alive 60 s',
      spec,
      scaled: `${devices} devices idle for ${seconds} s (of 1,000 all month); ${pings} PINGREQs metered`,
      measured: { publishes: 0, deliveries: 0, perPublish: pings ? unitsPer(delta, pings) : {} },
      nimbus: nimbusBill(spec, {
        usdPerPublish: 0,
        usdPerConnectionMinute: (usdPerPing * 60) / keepAliveSeconds,
      }),
      iotCore: iotCoreBill(spec),
      floor: floorBill(spec),
    };
  } finally {
    await closeAll(clients);
  }
}
