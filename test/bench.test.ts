import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  floorBill,
  gatewayUnits,
  iotCoreBill,
  iotCoreUnits,
  minutesPerMonth,
  nimbusBill,
  publishPacketBytes,
  type WorkloadSpec,
} from '../bench/economics.js';
import {
  barChart,
  benchmarksMarkdown,
  billSvg,
  type SuiteResults,
  unitsTable,
} from '../bench/suite-report.js';
import type { CostOutcome } from '../bench/workloads/common.js';
import { stageTotals } from '../bench/workloads/latency.js';
import { describeShortfall } from '../bench/workloads/run-health.js';
import { fullRate } from '../bench/workloads/traffic.js';

const telemetry = (qos: 0 | 1): WorkloadSpec => ({
  connections: 1001,
  publishesPerSecond: 100,
  deliveriesPerPublish: 1,
  topicBytes: 10,
  payloadBytes: 200,
  qos,
});
const idle: WorkloadSpec = {
  connections: 1000,
  publishesPerSecond: 0,
  deliveriesPerPublish: 0,
  topicBytes: 0,
  payloadBytes: 0,
  qos: 0,
  keepAliveSeconds: 60,
};
const close = (actual: number, expected: number) =>
  assert.ok(Math.abs(actual - expected) < 1e-6 * Math.max(1, Math.abs(expected)), `${actual} ≉ ${expected}`);

describe('IoT Core bill', () => {
  it('meters topic + payload in 5 KB increments, at least one message', () => {
    assert.equal(iotCoreUnits(10, 200), 1);
    assert.equal(iotCoreUnits(0, 5 * 1024), 1);
    assert.equal(iotCoreUnits(1, 5 * 1024), 2);
    assert.equal(iotCoreUnits(10, 16 * 1024), 4);
  });

  it('bills the publish and each delivery; at QoS 1 the subscriber PUBACK as one more message', () => {
    assert.equal(iotCoreBill(telemetry(0)).perMillion, 2);
    assert.equal(iotCoreBill(telemetry(1)).perMillion, 3);
    // 100 publishes/s for 30 days, twice over, plus 1,001 connections all month at $0.08/M minutes.
    close(iotCoreBill(telemetry(0)).perMonth, (100 * 2_592_000 * 2) / 1e6 + (1001 * 43_200 * 0.08) / 1e6);
  });

  it('charges an idle fleet only its connection-minutes: pings are free', () => {
    close(iotCoreBill(idle).perMonth, (1000 * minutesPerMonth * 0.08) / 1e6);
  });

  it('bills a 16 KB message four times over on each side', () => {
    const large = { ...telemetry(0), payloadBytes: 16 * 1024 };
    assert.equal(iotCoreBill(large).perMillion, 8);
  });
});

describe('API Gateway floor', () => {
  it('sizes an MQTT PUBLISH with its remaining-length bytes and packet id', () => {
    assert.equal(publishPacketBytes(10, 200, 0), 1 + 2 + 2 + 10 + 200);
    assert.equal(publishPacketBytes(10, 100, 1), 1 + 1 + 2 + 10 + 2 + 100);
    assert.equal(publishPacketBytes(10, 16 * 1024, 0), 1 + 3 + 2 + 10 + 16 * 1024);
  });

  it('counts base64 frames in 32 KB units', () => {
    assert.equal(gatewayUnits(215), 1);
    assert.equal(gatewayUnits(16_400), 1);
    assert.equal(gatewayUnits(24_576), 1); // exactly 32 KB once encoded
    assert.equal(gatewayUnits(24_577), 2);
  });

  it('is the publish in and the delivery out, and both PUBACKs at QoS 1', () => {
    assert.equal(floorBill(telemetry(0)).perMillion, 2);
    assert.equal(floorBill(telemetry(1)).perMillion, 4);
    close(floorBill(telemetry(0)).perMonth, (100 * 2_592_000 * 2) / 1e6 + (1001 * 43_200 * 0.25) / 1e6);
  });

  it('charges an idle fleet a PINGREQ and a PINGRESP per keep-alive, and its connection-minutes', () => {
    const pings = (1000 * 2_592_000) / 60;
    close(floorBill(idle).perMonth, (2 * pings) / 1e6 + (1000 * 43_200 * 0.25) / 1e6);
  });
});

describe('Nimbus bill', () => {
  it('scales the measured cost per publish to a million and to the month', () => {
    const bill = nimbusBill(telemetry(0), { usdPerPublish: 1e-5 });
    close(bill.perMillion, 10);
    close(bill.perMonth, 100 * 2_592_000 * 1e-5 + (1001 * 43_200 * 0.25) / 1e6);
  });

  it('adds an idle fleet its measured cost per connection-minute', () => {
    const bill = nimbusBill(idle, { usdPerPublish: 0, usdPerConnectionMinute: 1e-6 });
    close(bill.perMonth, 1000 * 43_200 * (1e-6 + 0.25 / 1e6));
  });
});

const outcome: CostOutcome = {
  kind: 'cost',
  name: 'w1-telemetry-qos0',
  title: 'W1 telemetry fan-in, QoS 0',
  spec: telemetry(0),
  scaled: '10 devices for 20 s (of 1,000 all month)',
  measured: { publishes: 20, deliveries: 20, perPublish: { gatewayMessages: 2, lambdaRequests: 2 } },
  nimbus: { perMillion: 8, perMonth: 2000 },
  iotCore: { perMillion: 2, perMonth: 500 },
  floor: { perMillion: 2, perMonth: 400 },
};
const results: SuiteResults = {
  startedAt: '2026-12-02T00:30:00.000Z',
  machine: {
    cpuModel: 'Test CPU',
    cpus: 2,
    memoryGb: 8,
    node: 'v20.0.0',
    platform: 'linux x64',
    load: [1, 2, 3],
  },
  scale: 0.01,
  streamPollIntervalMs: 250,
  brokers: ['Nimbus'],
  notes: ['Scale 0.01: counts shrunk.'],
  cost: [outcome],
  latency: {
    kind: 'latency',
    messages: 20,
    results: [
      {
        broker: 'nimbus',
        qos: 0,
        deliver: { count: 20, mean: 300, p50: 280, p90: 350, p99: 400, max: 410 },
        lost: 0,
      },
      { broker: 'aedes', qos: 0, deliver: { count: 20, mean: 1, p50: 1, p90: 2, p99: 4, max: 5 }, lost: 0 },
    ],
    stages: { qos0: { frame_queue: 5, post: 2 } },
    perMessage: {
      qos0: {
        own: { count: 20, mean: 19, p50: 18, p90: 25, p99: 31, max: 32 },
        streamWait: { count: 20, mean: 240, p50: 238, p90: 250, p99: 260, max: 261 },
        frameQueue: { count: 20, mean: 1, p50: 0.5, p90: 1, p99: 2, max: 2 },
        messageHandler: { count: 20, mean: 8, p50: 7.5, p90: 9, p99: 12, max: 12 },
        fanout: { count: 20, mean: 10, p50: 9.25, p90: 12, p99: 16, max: 16 },
      },
    },
  },
  scaling: {
    kind: 'scaling',
    messages: 100,
    results: [
      { broker: 'nimbus', publishers: 1, sent: 100, throughput: 10, lost: 0 },
      { broker: 'nimbus', publishers: 50, sent: 1000, throughput: 40, lost: 0 },
    ],
  },
  burst: {
    kind: 'burst',
    subscribers: 100,
    results: [
      { broker: 'nimbus', firstMs: 210, ms: 1234.5, delivered: 100 },
      { broker: 'aedes', ms: 12, delivered: 99 },
    ],
    load: 6.12,
  },
};

describe('benchmarks.md', () => {
  const markdown = benchmarksMarkdown(results);

  it('names the machine, the date and the scale', () => {
    assert.match(markdown, /2 × Test CPU, 8\.0 GB memory, linux x64, Node v20\.0\.0/);
    assert.match(markdown, /--scale 0\.01/);
    assert.match(markdown, /2026-12-02/);
    assert.match(markdown, /- Scale 0\.01: counts shrunk\./);
  });

  it('prints the bills and the ratios to IoT Core and the floor', () => {
    assert.match(
      markdown,
      /\| W1 telemetry fan-in, QoS 0 \| \$8\.00 \| \$2\.00 \| \$2\.00 \| \$2000 \| \$500 \| \$400 \| 4\.00× \| 5\.00× \|/,
    );
  });

  it('shows the latency ratio to each other broker, the stages, the scaling ratio and the burst', () => {
    assert.match(markdown, /\| aedes \| 0 \| 1\.0 \| 4\.0 \| 0 \| 280× \/ 100× \|/);
    assert.match(markdown, /\| qos0 \| 5\.0 \| 2\.0 \|/);
    // Per message: the own work's p50 and p99, the stream wait apart, then the stages' p50s.
    assert.match(markdown, /\| qos0 \| 20 \| 18\.0 \| 31\.0 \| 238\.0 \| 260\.0 \| 0\.5 \| 7\.5 \| 9\.3 \|/);
    assert.match(markdown, /\| nimbus \| 10\.0 \| 40\.0 \| 4\.00× \|/);
    assert.match(markdown, /each sending at least 20 .*, i\.e\. 100 with 1, 1000 with 50\./);
    // First and last delivery; a broker that timed no first delivery shows a dash; the load at the publish.
    assert.match(markdown, /\| nimbus \| 210\.0 \| 1234\.5 \| 100 \|/);
    assert.match(markdown, /\| aedes \| – \| 12\.0 \| 99 \|/);
    assert.match(markdown, /load average 6\.12 at the publish/);
  });

  it('prints no per-million figure for an idle fleet', () => {
    const idleOutcome = { ...outcome, title: 'W3 idle', spec: idle };
    assert.match(benchmarksMarkdown({ ...results, cost: [idleOutcome] }), /\| W3 idle \| — \| — \| — \|/);
  });
});

describe('SVG charts', () => {
  it('draws one bar per workload and service, labelled and escaped', () => {
    const svg = billSvg([outcome, { ...outcome, name: 'a<b' }]);
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    // Six bars plus three legend swatches.
    assert.equal(svg.match(/<rect /g)?.length, 9);
    assert.match(svg, /a&lt;b/);
    assert.doesNotMatch(svg, /a<b/);
  });

  it('makes a taller bar of a larger value, and a flat one of a missing value', () => {
    const svg = barChart('t', 'ms', [{ label: 'g', values: [1, 100, Number.NaN] }], ['a', 'b', 'c']);
    const heights = [...svg.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="20" height="([\d.]+)"/g)].map((m) =>
      Number(m[1]),
    );
    assert.equal(heights.length, 3);
    assert.ok((heights[1] ?? 0) > (heights[0] ?? 0));
    assert.equal(heights[2], 0);
  });
});

describe('publish stages from /metrics', () => {
  it('reads the sum and count of each stage', () => {
    const text = [
      '# TYPE nimbus_publish_stage_seconds histogram',
      'nimbus_publish_stage_seconds_bucket{stage="post",le="0.001"} 1',
      'nimbus_publish_stage_seconds_sum{stage="post"} 0.25',
      'nimbus_publish_stage_seconds_count{stage="post"} 5',
      'nimbus_publish_stage_seconds_sum{stage="frame_queue"} 1.5e-2',
      'nimbus_publish_stage_seconds_count{stage="frame_queue"} 3',
    ].join('\n');
    assert.deepEqual(stageTotals(text), {
      post: { sum: 0.25, count: 5 },
      frame_queue: { sum: 0.015, count: 3 },
    });
  });
});

describe('full-rate traffic (--full-rate)', () => {
  it('a scaled-down W1 fleet publishes as much more often, and keeps alive as much more often, as it is smaller', () => {
    // 100 of 1,000 devices: each every second instead of every ten, 100/s in all; keep-alive 300 s → 30 s.
    assert.deepEqual(fullRate({ publishers: 100, periodMs: 10_000, spec: { publishesPerSecond: 100 } }), {
      periodMs: 1_000,
      keepalive: 30,
    });
  });

  it('a workload run at full size is left as it is', () => {
    assert.deepEqual(fullRate({ publishers: 1, periodMs: 1_000, spec: { publishesPerSecond: 1 } }), {
      periodMs: 1_000,
      keepalive: 300,
    });
  });
});

describe('an incomplete traffic run', () => {
  it('says who was lost and why, what was not sent and what did not arrive', () => {
    const text = describeShortfall(
      {
        lost: { publishers: 3, subscribers: 1, reasons: { 'Keepalive timeout': 4 } },
        unsent: 120,
        unacknowledged: 2,
        missing: 4,
        expected: 400,
      },
      { publishers: 10, subscribers: 1 },
    );
    assert.equal(
      text,
      '3 of 10 publishers and 1 of 1 subscribers lost their connection (Keepalive timeout ×4); 120 publishes not sent; 2 QoS 1 publishes never acknowledged; 4 of 400 deliveries missing',
    );
  });

  it('is silent about a whole run', () => {
    const whole = {
      lost: { publishers: 0, subscribers: 0, reasons: {} },
      unsent: 0,
      unacknowledged: 0,
      missing: 0,
      expected: 300,
    };
    assert.equal(describeShortfall(whole, { publishers: 10, subscribers: 1 }), undefined);
  });

  it('marks the units row of an incomplete run', () => {
    const row = unitsTable([
      { ...outcome, measured: { ...outcome.measured, shortfall: '4 of 20 deliveries missing' } },
    ]);
    assert.match(row, /\*\*incomplete: 4 of 20 deliveries missing\*\*/);
    assert.doesNotMatch(unitsTable([outcome]), /incomplete/);
  });
});
