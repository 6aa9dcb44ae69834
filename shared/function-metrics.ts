/**
 * The functions' side of the broker metrics: Powertools Metrics, which writes CloudWatch Embedded
 * Metric Format to stdout, where Lambda's log pipeline turns it into metrics without an API call.
 * Namespace and service come from the environment functionEnvironment builds.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { FanOutResult } from './broker/fanout.js';
import { brokerMetricNames } from './metric-names.js';

export { MetricUnit };

/**
 * One function instance's metrics, read from `POWERTOOLS_METRICS_NAMESPACE` and
 * `POWERTOOLS_SERVICE_NAME`; `POWERTOOLS_METRICS_DISABLED=true` silences it (the emulator does).
 *
 * @example
 * const metrics = functionMetrics();
 * export const handler = async () => { try { … } finally { flushMetrics(metrics); } };
 */
export function functionMetrics(): Metrics {
  return new Metrics();
}

/** Writes what was recorded during this invocation, if anything (an empty flush only warns). */
export function flushMetrics(metrics: Metrics): void {
  if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
}

/**
 * Records one message's fan-out: its deliveries by outcome, and how long after its publication
 * the fan-out reached it.
 *
 * @example
 * recordFanOut(metrics, await fanOut(broker, message), message.publishedAt);
 */
export function recordFanOut(
  metrics: Metrics,
  result: FanOutResult,
  publishedAt: number,
  now = Date.now(),
): void {
  for (const [outcome, name] of Object.entries(brokerMetricNames.deliveries))
    metrics.addMetric(name, MetricUnit.Count, result[outcome as keyof FanOutResult]);
  metrics.addMetric(brokerMetricNames.fanoutLag, MetricUnit.Milliseconds, Math.max(0, now - publishedAt));
}
