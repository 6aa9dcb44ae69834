/**
 * MQTT 5 Server Keep Alive (§3.2.2.3.14, docs/adr/0021-flow-control-server-keep-alive-will-delay.md):
 * the broker may tell a 5.0 client which keep-alive to use instead of its own [MQTT-3.2.2-21], and
 * then holds it to that value; without one, the client's own is used [MQTT-3.2.2-22].
 */
import { gatewayKeepAliveCeiling } from '../limits.js';
import type { ProtocolVersion } from '../protocol/frames.js';

/**
 * The keep-alive a CONNECT gets, and the Server Keep Alive to announce when it differs from the
 * client's. With `serverKeepAliveSeconds` set, a 5.0 client asking 0 or less gets that, and one
 * asking more than API Gateway's idle timeout allows gets `gatewayKeepAliveCeiling`; 3.1.1 cannot
 * be told, so it keeps its own.
 *
 * @example
 * grantKeepAlive(5, 30, 300); // { keepAliveSeconds: 300, serverKeepAlive: 300 }
 * grantKeepAlive(5, 400, 300); // { keepAliveSeconds: 400 }: the client's own
 * grantKeepAlive(5, 900, 300); // { keepAliveSeconds: 540, serverKeepAlive: 540 }: the gateway would cut it
 */
export function grantKeepAlive(
  version: ProtocolVersion,
  asked: number,
  serverKeepAliveSeconds: number,
): { keepAliveSeconds: number; serverKeepAlive?: number } {
  if (version !== 5 || serverKeepAliveSeconds <= 0) return { keepAliveSeconds: asked };
  // Keep-alive 0 would let an idle client be cut by the gateway's idle timeout: it gets the broker's too.
  const granted =
    asked === 0 || asked < serverKeepAliveSeconds
      ? serverKeepAliveSeconds
      : Math.min(asked, gatewayKeepAliveCeiling);
  return granted === asked
    ? { keepAliveSeconds: asked }
    : { keepAliveSeconds: granted, serverKeepAlive: granted };
}
