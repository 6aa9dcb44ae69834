/**
 * Picks the WebSocket implementation: an explicit constructor wins; Node uses the `ws` package;
 * browsers (and workers) use `globalThis.WebSocket`. `ws` is only ever imported dynamically, on the
 * Node path, so a browser bundle never has to execute it (and `--external:ws` keeps it out entirely).
 */
import {
  BROWSER_MAX_FRAME_BYTES,
  GATEWAY_FRAME_LIMIT,
  MAX_FRAME_BYTES,
  messageFragments,
} from '../shared/protocol/wire.js';

/**
 * The part of the WHATWG WebSocket API the transport uses. Both the browser's `WebSocket` and the
 * `ws` package's `WebSocket` satisfy it.
 */
export interface WebSocketLike {
  readonly readyState: number;
  /** Subprotocol the server accepted. */
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: 'error', listener: (event: { error?: unknown; message?: string }) => void): void;
}

/** A WebSocket class such as the browser's `WebSocket` or `ws`'s `WebSocket`. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** `ws`'s client options (headers, agent, TLS…), typed loosely so browser builds need no `ws` types. */
export type NodeWebSocketOptions = Record<string, unknown>;

/** Standard readyState values (the constants are not on every implementation's prototype). */
export const CONNECTING = 0;
export const OPEN = 1;

function isNode(): boolean {
  // Browser bundles may polyfill `process`, but never with `versions.node`.
  return typeof globalThis.process?.versions?.node === 'string';
}

/**
 * Opens a WebSocket to `url` asking for `protocols`.
 * @param explicit constructor chosen by the caller; used as is.
 * @param nodeOptions passed to `ws` when it is the implementation picked.
 * @example
 * const socket = await openWebSocket('wss://example.com/prod', ['mqtt']);
 */
export async function openWebSocket(
  url: string,
  protocols: string[],
  explicit?: WebSocketConstructor,
  nodeOptions?: NodeWebSocketOptions,
): Promise<WebSocketLike> {
  if (explicit) return new explicit(url, protocols);
  if (isNode()) {
    const { default: NodeWebSocket } = await import('ws');
    return new NodeWebSocket(url, protocols, nodeOptions);
  }
  const Native: WebSocketConstructor | undefined = globalThis.WebSocket;
  if (!Native) {
    throw new Error('no WebSocket implementation: pass one as the `WebSocket` option');
  }
  return new Native(url, protocols);
}

/** `ws`'s send, which can split one message into several frames; browsers' cannot. */
type FragmentingSend = (data: string, options: { fin: boolean }) => void;

/**
 * Whether this socket can split a message into frames. Node's `ws` can (it also has `ping`);
 * a browser WebSocket sends each message as one frame.
 */
export function canFragment(socket: WebSocketLike): boolean {
  return typeof (socket as { ping?: unknown }).ping === 'function';
}

/**
 * Sends one text message, split into frames of at most 32 KB where the socket can, as API
 * Gateway requires of messages over 32 KB.
 *
 * @example
 * sendMessage(socket, encodeFrame(packets));
 */
export function sendMessage(socket: WebSocketLike, text: string): void {
  if (text.length <= GATEWAY_FRAME_LIMIT || !canFragment(socket)) {
    socket.send(text);
    return;
  }
  const send = (socket.send as FragmentingSend).bind(socket);
  const fragments = messageFragments(text);
  for (const [i, fragment] of fragments.entries()) send(fragment, { fin: i === fragments.length - 1 });
}

/** Most bytes of packets per message: 128 KB of base64, or one 32 KB frame where the socket cannot split. */
export function maxPacketBytesFor(socket: WebSocketLike): number {
  return canFragment(socket) ? MAX_FRAME_BYTES : BROWSER_MAX_FRAME_BYTES;
}
