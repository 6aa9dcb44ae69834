import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { APIGatewayProxyResultV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { WebSocket, WebSocketServer } from 'ws';
import {
  connectionIdAttribute,
  disconnectBody,
  disconnectEventType,
  eventTypeAttribute,
  sourceIpAttribute,
} from '../shared/frame-queue.js';
import { GATEWAY_MESSAGE_LIMIT } from '../shared/protocol/wire.js';
import type { FifoSendInput } from './fifo-queue.js';
import { ManagementApi } from './management-api.js';
import type { Meter } from './meter.js';
import type { SignatureChecker } from './sigv4.js';

/** API Gateway WebSocket limits (docs: "Amazon API Gateway quotas for WebSocket APIs"). */
export interface GatewayLimits {
  /** Largest message, in bytes. API Gateway: 128 KB. */
  readonly maxMessageBytes: number;
  /** Idle connection timeout. API Gateway: 10 minutes. */
  readonly idleTimeoutMs: number;
  /** Maximum connection duration. API Gateway: 2 hours. */
  readonly maxConnectionMs: number;
}

export const awsGatewayLimits: GatewayLimits = {
  maxMessageBytes: GATEWAY_MESSAGE_LIMIT,
  idleTimeoutMs: 10 * 60_000,
  maxConnectionMs: 2 * 3_600_000,
};

export interface GatewayOptions {
  readonly host: string;
  readonly port: number;
  readonly stage: string;
  readonly limits: GatewayLimits;
  /** Invokes the `$connect` function with an API Gateway event; rejects when the function fails. */
  readonly connect: (event: Record<string, unknown>) => Promise<unknown>;
  /** Where `$default` frames and `$disconnect` notices go: `SendMessage` on the frame queue. */
  readonly queue: { send(message: FifoSendInput): unknown };
  readonly meter: Meter;
  readonly log: (message: string) => void;
  /** Sees the frames that cross, for the emulator's logs and console. */
  readonly observer?: GatewayObserver;
  /** Serves other HTTP requests on the port (the console); returns false for those it does not serve. */
  readonly http?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Sees every WebSocket message both ways, e.g. to count MQTT packets. */
  readonly traffic?: GatewayTraffic;
  /** Extra HTTP routes on the gateway's port, by path (e.g. `/metrics`), answered before the management API. */
  readonly routes?: Readonly<Record<string, (req: IncomingMessage, res: ServerResponse) => void>>;
  /** Checks the management API's SigV4 signatures, as API Gateway does; absent, any request is taken. */
  readonly signatures?: SignatureChecker;
  /**
   * Share of posts refused with 429 `LimitExceededException`, at random, as API Gateway refuses
   * posts past the account's request rate or while a client's buffer is full; nothing is sent then.
   * @default 0
   */
  readonly throttledPostShare?: number;
}

/** Watches what crosses the gateway, as API Gateway's access logs would; changes nothing. */
export interface GatewayObserver {
  /** `$connect` refused the WebSocket handshake with this HTTP status and body. */
  handshakeRefused(status: number, body: string): void;
  opened(connectionId: string, connectedAt: number, sourceIp: string): void;
  /** A text frame from the client. */
  frameIn(connectionId: string, frame: string): void;
  /** A text frame posted to the client through the management API. */
  frameOut(connectionId: string, frame: string): void;
  /** The gateway itself is closing the connection, because of `why`. */
  closing(connectionId: string, why: string): void;
  closed(connectionId: string, code: number): void;
}

/** What crosses the gateway, for whoever counts it. */
export interface GatewayTraffic {
  /** A WebSocket message a client sent. */
  inbound(body: string): void;
  /** A message posted to a client; `elapsedMs` from the POST's arrival to the frame written to the socket. */
  outbound(body: string, elapsedMs: number): void;
}

interface Connection {
  readonly id: string;
  readonly socket: WebSocket;
  readonly connectedAt: number;
  readonly sourceIp: string;
  readonly userAgent: string;
  lastActiveAt: number;
  idleTimer?: NodeJS.Timeout;
  lifetimeTimer?: NodeJS.Timeout;
}

const apiId = 'nimbuslocal';

/** A connection id shaped like API Gateway's (base64 of 10 random bytes). */
function newConnectionId(): string {
  return randomBytes(10).toString('base64');
}

/**
 * An API Gateway WebSocket API on localhost: the WebSocket endpoint clients
 * use, and the management API (`@connections`) functions use, on one port.
 *
 * Like AWS it invokes `$connect` before the handshake completes and echoes
 * only the subprotocol the function returns; sends each message to the
 * FIFO queue, as the product's `$default` integration does; closes binary
 * frames with 1003 and oversize messages with 1009; enforces the idle and
 * lifetime limits; and after a close queues the `$disconnect` notice behind
 * the connection's frames.
 */
export class Gateway {
  private readonly connections = new Map<string, Connection>();
  private readonly chosenProtocol = new WeakMap<IncomingMessage, string | false>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly management: ManagementApi;
  /** Kept from listen(): events built after the server closed still need the domain name. */
  private port = 0;

  constructor(private readonly options: GatewayOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.limits.maxMessageBytes,
      handleProtocols: (_protocols, request) => this.chosenProtocol.get(request) ?? false,
      perMessageDeflate: false,
    });
    this.management = new ManagementApi({
      ...options,
      connections: {
        open: (id) => {
          const connection = this.connections.get(id);
          return connection?.socket.readyState === WebSocket.OPEN ? connection : undefined;
        },
        touch: (id) => {
          const connection = this.connections.get(id);
          if (connection) this.touch(connection);
        },
        close: (id) => {
          const connection = this.connections.get(id);
          if (connection)
            this.end(connection, 1000, 'Connection closed by the server', 'closed by the broker');
        },
      },
    });
    this.server = createServer((req, res) => this.management.handle(req, res));
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(this.options.port, this.options.host, resolve));
    const address = this.server.address();
    if (!address || typeof address === 'string') throw new Error('gateway has no port');
    this.port = address.port;
    return this.port;
  }

  /** Posts refused with 429 so far (`throttledPostShare`). */
  get throttledPosts(): number {
    return this.management.throttledPosts;
  }

  /** How many connections are open, without copying their ids. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Open connection ids, for tests and the console. */
  get connectionIds(): string[] {
    return [...this.connections.keys()];
  }

  /** Waits for the `$connect` invocations started so far to finish. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Ends every client connection (their `$disconnect` notices queued); the management API stays up. */
  async disconnectAll(): Promise<void> {
    for (const connection of this.connections.values()) connection.socket.terminate();
    await this.settle();
  }

  /** Ends every client connection, then stops answering on the port. */
  async close(): Promise<void> {
    await this.disconnectAll();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Kept-alive HTTP connections (a console page polling, the functions' management clients)
    // would hold the close open for as long as they keep asking.
    this.server.closeAllConnections();
    await closed;
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    promise.finally(() => this.inFlight.delete(promise)).catch(() => {});
    return promise;
  }

  /** `$connect` is the one route that invokes a function; the others send to the frame queue. */
  private connectRequestContext(connectionId: string, connectedAt: number, extra: object) {
    const now = Date.now();
    return {
      routeKey: '$connect',
      eventType: 'CONNECT',
      extendedRequestId: randomBytes(8).toString('base64'),
      requestTime: new Date(now).toUTCString(),
      messageDirection: 'IN',
      stage: this.options.stage,
      connectedAt,
      requestTimeEpoch: now,
      requestId: randomBytes(8).toString('base64'),
      domainName: `127.0.0.1:${this.port}`,
      connectionId,
      apiId,
      ...extra,
    };
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const connectionId = newConnectionId();
    const connectedAt = Date.now();
    const headers = Object.fromEntries(
      Object.entries(req.headers).map(([name, value]) => [
        name,
        Array.isArray(value) ? value.join(',') : (value ?? ''),
      ]),
    );
    const sourceIp = req.socket.remoteAddress ?? '127.0.0.1';
    const event = {
      headers,
      multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([n, v]) => [n, [v]])),
      isBase64Encoded: false,
      requestContext: this.connectRequestContext(connectionId, connectedAt, {
        identity: { sourceIp, userAgent: headers['user-agent'] ?? '' },
      }),
    };
    let response: APIGatewayProxyResultV2 | undefined;
    try {
      response = (await this.track(this.options.connect(event))) as APIGatewayProxyResultV2 | undefined;
    } catch (error) {
      this.options.log(`$connect failed: ${(error as Error).message}`);
      socket.end('HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n');
      return;
    }
    const structured: APIGatewayProxyStructuredResultV2 =
      typeof response === 'object' && response !== null ? response : { statusCode: 200 };
    const status = structured.statusCode ?? 200;
    if (status < 200 || status > 299) {
      // A non-2xx answer from $connect refuses the handshake.
      this.options.observer?.handshakeRefused(status, String(structured.body ?? ''));
      socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const echoed = Object.entries(structured.headers ?? {}).find(
      ([name]) => name.toLowerCase() === 'sec-websocket-protocol',
    )?.[1];
    this.chosenProtocol.set(req, echoed === undefined ? false : String(echoed));
    this.wss.handleUpgrade(req, socket, head, (ws) =>
      this.opened(ws, connectionId, connectedAt, sourceIp, headers['user-agent'] ?? ''),
    );
  }

  private opened(
    socket: WebSocket,
    id: string,
    connectedAt: number,
    sourceIp: string,
    userAgent: string,
  ): void {
    const connection: Connection = {
      id,
      socket,
      connectedAt,
      sourceIp,
      userAgent,
      lastActiveAt: connectedAt,
    };
    this.connections.set(id, connection);
    this.options.meter.connectionOpened(id, connectedAt);
    this.options.observer?.opened(id, connectedAt, sourceIp);
    this.touch(connection);
    connection.lifetimeTimer = setTimeout(
      () => this.end(connection, 1001, 'Going away', 'maximum connection duration reached'),
      this.options.limits.maxConnectionMs,
    );
    socket.on('message', (data, isBinary) => {
      if (isBinary) {
        // API Gateway WebSocket APIs accept text frames only.
        this.end(connection, 1003, 'Unsupported data', 'binary frame (text frames only)');
        return;
      }
      const body = data.toString();
      this.options.meter.gatewayMessage('in', Buffer.byteLength(body));
      this.options.observer?.frameIn(id, body);
      this.options.traffic?.inbound(body);
      this.touch(connection);
      // The AWS integration's template: SendMessage with MessageGroupId=$context.connectionId,
      // MessageDeduplicationId=$context.requestId (fresh per message) and the connection id as a
      // message attribute, and $context.identity.sourceIp as another.
      this.options.queue.send({
        groupId: id,
        deduplicationId: randomBytes(8).toString('base64'),
        body,
        attributes: { [connectionIdAttribute]: id, [sourceIpAttribute]: connection.sourceIp },
      });
    });
    socket.on('close', (code) => {
      this.options.observer?.closed(id, code);
      clearTimeout(connection.idleTimer);
      clearTimeout(connection.lifetimeTimer);
      this.connections.delete(id);
      this.options.meter.connectionClosed(id);
      // Like the product's $disconnect integration: into the connection's message group, after its frames.
      this.options.queue.send({
        groupId: id,
        deduplicationId: randomBytes(8).toString('base64'),
        body: disconnectBody,
        attributes: { [connectionIdAttribute]: id, [eventTypeAttribute]: disconnectEventType },
      });
    });
    socket.on('error', (error) => this.options.log(`connection ${id}: ${error.message}`));
  }

  private touch(connection: Connection): void {
    connection.lastActiveAt = Date.now();
    clearTimeout(connection.idleTimer);
    connection.idleTimer = setTimeout(
      () => this.end(connection, 1001, 'Going away', 'idle timeout'),
      this.options.limits.idleTimeoutMs,
    );
  }

  private end(connection: Connection, code: number, reason: string, why: string): void {
    this.options.observer?.closing(connection.id, why);
    connection.socket.close(code, reason);
  }
}
