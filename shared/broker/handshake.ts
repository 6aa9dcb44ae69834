/**
 * The subprotocol to answer a WebSocket handshake with: `mqtt` when the
 * client offers it (a comma-separated list), else none and the handshake is
 * refused.
 *
 * @example
 * chooseSubprotocol('mqttv3.1, mqtt'); // 'mqtt'
 * chooseSubprotocol(undefined);        // undefined
 */
export function chooseSubprotocol(offered: string | undefined): 'mqtt' | undefined {
  return offered?.split(',').some((p) => p.trim() === 'mqtt') ? 'mqtt' : undefined;
}
