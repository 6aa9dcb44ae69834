/**
 * The emulator's timers that stand in for EventBridge rules: the sweeper every minute and the
 * keep-alive check every second (docs/adr/0015-keep-alive-deadlines.md).
 */
import { randomUUID } from 'node:crypto';
import type { ScheduledEvent } from 'aws-lambda';

/** What EventBridge sends the sweeper on each tick of its schedule. */
export function scheduledEvent(region: string, accountId: string): ScheduledEvent {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: accountId,
    time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region,
    resources: [`arn:aws:events:${region}:${accountId}:rule/nimbus-sweep`],
    detail: {},
  };
}

/**
 * Runs `run` every `intervalMs`; a tick that finds the last run still going is skipped, as a
 * scheduled function still busy would overlap on AWS only at its own cost. Returns the stop, which
 * waits for a run in progress. An interval of 0 schedules nothing.
 *
 * @example
 * cleanups.push(every(60_000, () => invoke('sweeper', event), (e) => log(e.message)));
 */
export function every(
  intervalMs: number,
  run: () => Promise<unknown>,
  onError: (error: Error) => void,
): () => Promise<void> {
  if (intervalMs <= 0) return async () => {};
  let running: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    running ??= run()
      .catch(onError)
      .finally(() => {
        running = undefined;
      });
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
