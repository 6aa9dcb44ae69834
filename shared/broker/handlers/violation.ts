import type { Invocation } from '../context.js';

/**
 * Ends the connection for a protocol violation: an MQTT 5 client first gets
 * a DISCONNECT saying why [MQTT-4.13.1-1]; a 3.1.1 client is just closed [MQTT-4.8.0-1].
 */
export function protocolViolation(
  invocation: Invocation,
  version: 4 | 5 | undefined,
  reasonCode: number,
  why: string,
) {
  if (version === 5) invocation.outbox.push({ cmd: 'disconnect', reasonCode });
  invocation.closeReason = why;
}
