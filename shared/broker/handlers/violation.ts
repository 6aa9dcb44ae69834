import type { Invocation } from '../context.js';
import { ReasonCode } from '../reason-codes.js';

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
  // The reason string tells whoever reads the client's log what went wrong (5.0 §3.14.2.2.3);
  // the broker's own failures (0x83) are not described to clients.
  const told =
    reasonCode === ReasonCode.ImplementationSpecificError ? {} : { properties: { reasonString: why } };
  if (version === 5) invocation.outbox.push({ cmd: 'disconnect', reasonCode, ...told });
  invocation.closeReason = why;
}
