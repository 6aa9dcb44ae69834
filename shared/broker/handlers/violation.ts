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
  // The reason string says what went wrong to whoever reads the client's log (5.0 §3.14.2.2.3).
  if (version === 5)
    invocation.outbox.push({ cmd: 'disconnect', reasonCode, properties: { reasonString: why } });
  invocation.closeReason = why;
}
