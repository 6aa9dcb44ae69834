import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';
import type { Meter } from './meter.js';
import type { SignatureChecker } from './sigv4.js';

/** An open connection as the management API describes and posts to it. */
export interface ManagedConnection {
  readonly socket: WebSocket;
  readonly connectedAt: number;
  readonly lastActiveAt: number;
  readonly sourceIp: string;
  readonly userAgent: string;
}

/** What the management API needs of the gateway's connections, by connection id. */
export interface ManagedConnections {
  /** The connection if it is open; undefined answers 410. */
  open(connectionId: string): ManagedConnection | undefined;
  /** A post counts as activity for the idle timeout. */
  touch(connectionId: string): void;
  /** DeleteConnection: the gateway closes it. */
  close(connectionId: string): void;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** The gateway's options the HTTP side uses (the gateway passes its own). */
export interface ManagementApiOptions {
  readonly limits: { readonly maxMessageBytes: number };
  readonly meter: Meter;
  /** Sees each posted frame. */
  readonly observer?: { frameOut(connectionId: string, frame: string): void };
  /** Counts each posted message once written to its socket. */
  readonly traffic?: { outbound(body: string, elapsedMs: number): void };
  /** The console: returns false for requests it does not serve. */
  readonly http?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Extra routes by path, answered first. */
  readonly routes?: Readonly<Record<string, Handler>>;
  readonly throttledPostShare?: number;
  readonly signatures?: SignatureChecker;
  readonly connections: ManagedConnections;
}

function gone(res: ServerResponse, connectionId: string): void {
  res.writeHead(410, { 'content-type': 'application/json', 'x-amzn-errortype': 'GoneException' });
  res.end(JSON.stringify({ message: `Connection ${connectionId} is gone` }));
}

/**
 * The HTTP side of the gateway's port: extra routes (`/metrics`, the Lambda Invoke path), the
 * console, and API Gateway's management API, `@connections/{id}`, signed as AWS wants it.
 *
 * @example
 * const api = new ManagementApi({ limits, meter, connections });
 * createServer((req, res) => api.handle(req, res));
 */
export class ManagementApi {
  private throttled = 0;

  constructor(private readonly options: ManagementApiOptions) {}

  /** Posts refused with 429 so far (`throttledPostShare`). */
  get throttledPosts(): number {
    return this.throttled;
  }

  /** The management API: POST/GET/DELETE /@connections/{id}, optionally under a stage path. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const arrived = performance.now();
    const route = this.options.routes?.[new URL(req.url ?? '/', 'http://localhost').pathname];
    if (route) {
      route(req, res);
      return;
    }
    if (this.options.http?.(req, res)) return;
    const match = /\/@connections\/([^/?]+)/.exec(req.url ?? '');
    if (!match) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          message: `Not found: this endpoint serves WebSocket clients, /@connections/{id}${Object.keys(
            this.options.routes ?? {},
          )
            .map((path) => ` and ${path}`)
            .join('')}${this.options.http ? ', and the console at /' : ''}`,
        }),
      );
      return;
    }
    const connectionId = decodeURIComponent(match[1]);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const checked = this.options.signatures?.check({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      });
      if (!checked) return this.connectionsRequest(req, res, connectionId, chunks, arrived);
      checked.then(
        (refusal) => {
          if (!refusal) return this.connectionsRequest(req, res, connectionId, chunks, arrived);
          res.writeHead(403, { 'content-type': 'application/json', 'x-amzn-errortype': refusal.errorType });
          res.end(JSON.stringify({ message: refusal.message }));
        },
        (error: Error) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ message: `signature check failed: ${error.message}` }));
        },
      );
    });
  }

  /** A signed `@connections/{id}` request: POST, GET or DELETE on that connection. */
  private connectionsRequest(
    req: IncomingMessage,
    res: ServerResponse,
    connectionId: string,
    chunks: readonly Buffer[],
    arrived: number,
  ): void {
    const connection = this.options.connections.open(connectionId);
    if (!connection) {
      gone(res, connectionId);
      return;
    }
    switch (req.method) {
      case 'POST': {
        const body = Buffer.concat(chunks);
        if (body.length > this.options.limits.maxMessageBytes) {
          res.writeHead(413, {
            'content-type': 'application/json',
            'x-amzn-errortype': 'PayloadTooLargeException',
          });
          res.end(JSON.stringify({ message: 'Message too long' }));
          return;
        }
        if (Math.random() < (this.options.throttledPostShare ?? 0)) {
          this.throttled++;
          res.writeHead(429, {
            'content-type': 'application/json',
            'x-amzn-errortype': 'LimitExceededException',
          });
          res.end(JSON.stringify({ message: 'Limit Exceeded' }));
          return;
        }
        this.options.meter.gatewayMessage('out', body.length);
        // Posted data reaches the client as a text frame.
        const text = body.toString();
        this.options.observer?.frameOut(connectionId, text);
        this.options.connections.touch(connectionId);
        connection.socket.send(text, { binary: false }, (error) => {
          if (!error) this.options.traffic?.outbound(text, performance.now() - arrived);
        });
        res.writeHead(200).end();
        return;
      }
      case 'GET':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          // The REST API's JSON names, as the SDK expects them.
          JSON.stringify({
            connectedAt: new Date(connection.connectedAt).toISOString(),
            lastActiveAt: new Date(connection.lastActiveAt).toISOString(),
            identity: { sourceIp: connection.sourceIp, userAgent: connection.userAgent },
          }),
        );
        return;
      case 'DELETE':
        this.options.connections.close(connectionId);
        res.writeHead(204).end();
        return;
      default:
        res.writeHead(405).end();
    }
  }
}
