import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { TableId } from '../shared/tables.js';
import { billFor } from './bill.js';
import type { MeterReading } from './meter.js';
import type { Traffic } from './traffic.js';

/** Most rows one table listing returns by default; the page says when there are more. */
export const consoleRowLimit = 200;

export interface ConsoleOptions {
  readonly traffic: Traffic;
  readonly meter: () => MeterReading;
  /** DynamoDB Local, read with the console's own client: the console's scans are not the broker's bill. */
  readonly dynamo: DynamoDBClientConfig;
  readonly tables: Readonly<Record<TableId, string>>;
  /** Most rows a table listing returns. @default consoleRowLimit */
  readonly rowLimit?: number;
}

/** One table listing: the rows, and whether the table had more than were read. */
export interface Listing<T> {
  readonly rows: T[];
  readonly truncated: boolean;
  readonly limit: number;
}

const consoleDir = new URL('../console/', import.meta.url);
const assets: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
const controlCharacters = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** A payload as the page shows it: its text when it is printable UTF-8, else its size. */
function preview(payload: unknown): string {
  if (!(payload instanceof Uint8Array)) return '';
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return `(${payload.length} bytes, binary)`;
  }
  if (controlCharacters.test(text)) return `(${payload.length} bytes, binary)`;
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

/**
 * The console's HTTP routes on the gateway's port: the page, its script (bundled from console/app.ts
 * with esbuild on first request, then cached) and the JSON endpoints it polls. The endpoints read
 * what the gateway saw and the broker's tables; the broker itself is not asked.
 *
 * @example
 * const routes = new ConsoleRoutes({ traffic, meter: () => meter.read(), dynamo, tables });
 * new Gateway({ ...options, http: (req, res) => routes.handle(req, res) });
 */
export class ConsoleRoutes {
  private readonly db: DynamoDBDocumentClient;
  private bundle?: Promise<string>;

  constructor(private readonly options: ConsoleOptions) {
    this.db = DynamoDBDocumentClient.from(new DynamoDBClient(options.dynamo));
  }

  /** Answers the request if it is the console's; false leaves it to the gateway. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const api = this.endpoints[path];
    const asset = assets[path];
    if (!api && !asset && path !== '/console.js') {
      if (!path.startsWith('/api/')) return false;
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          message: `No ${path}; the console serves ${Object.keys(this.endpoints).join(', ')}`,
        }),
      );
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET', 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `${path} answers GET only` }));
      return true;
    }
    const body: Promise<{ type: string; text: string }> = api
      ? api().then((value) => ({ type: 'application/json', text: JSON.stringify(value) }))
      : asset
        ? readFile(new URL(asset.file, consoleDir), 'utf8').then((text) => ({ type: asset.type, text }))
        : this.script().then((text) => ({ type: 'text/javascript; charset=utf-8', text }));
    body.then(
      ({ type, text }) => {
        res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (error: Error) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: `${path}: ${error.message}` }));
      },
    );
    return true;
  }

  close(): void {
    this.db.destroy();
  }

  private readonly endpoints: Record<string, (() => Promise<unknown>) | undefined> = {
    '/api/clients': () => this.clients(),
    '/api/sessions': () => this.sessions(),
    '/api/subscriptions': () => this.subscriptions(),
    '/api/retained': () => this.retained(),
    '/api/stats': async () => this.stats(),
  };

  /** The browser build of the page and the client transport; built once, on first request. */
  private script(): Promise<string> {
    this.bundle ??= import('esbuild')
      .then(({ build }) =>
        build({
          entryPoints: [new URL('app.ts', consoleDir).pathname],
          bundle: true,
          platform: 'browser',
          format: 'iife',
          target: 'es2022',
          write: false,
          logLevel: 'silent',
        }),
      )
      .then((result) => result.outputFiles[0].text);
    // A failed build is retried on the next request rather than cached.
    this.bundle.catch(() => {
      this.bundle = undefined;
    });
    return this.bundle;
  }

  /** Up to the row limit's items of a table, in the table's scan order. */
  private async scan(table: TableId): Promise<Listing<Record<string, unknown>>> {
    const limit = this.options.rowLimit ?? consoleRowLimit;
    const rows: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new ScanCommand({
          TableName: this.options.tables[table],
          // One more than shown, to know whether there are more.
          Limit: limit + 1 - rows.length,
          ExclusiveStartKey: start,
        }),
      );
      rows.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start && rows.length <= limit);
    return { rows: rows.slice(0, limit), truncated: rows.length > limit, limit };
  }

  private async clients() {
    const table = await this.scan('Connections');
    const byConnection = new Map(table.rows.map((row) => [String(row.connectionId), row]));
    const limit = this.options.rowLimit ?? consoleRowLimit;
    const views = this.options.traffic.views;
    const rows = views.slice(0, limit).map((view) => {
      const row = byConnection.get(view.connectionId);
      return {
        connectionId: view.connectionId,
        // The broker's row knows an id it assigned to an MQTT 3.1.1 client that sent none.
        clientId: row ? String(row.clientId) : view.clientId,
        username: view.username,
        protocolVersion: view.protocolVersion,
        keepAliveSeconds: view.keepAliveSeconds,
        cleanSession: view.cleanSession,
        state: view.accepted ? 'connected' : view.clientId === undefined ? 'awaiting CONNECT' : 'connecting',
        connectedAt: view.connectedAt,
        lastActiveAt: view.lastActiveAt,
        sourceIp: view.sourceIp,
        publishesIn: view.publishesIn,
        publishesOut: view.publishesOut,
      };
    });
    return { rows, truncated: views.length > limit, limit };
  }

  private async sessions() {
    const table = await this.scan('Sessions');
    return {
      ...table,
      rows: table.rows.map((row) => ({
        clientId: String(row.clientId),
        online: row.connectionId !== undefined,
        protocolVersion: row.protocolVersion,
        cleanSession: row.cleanSession === true,
        queued: Number(row.queued ?? 0),
      })),
    };
  }

  private async subscriptions() {
    const table = await this.scan('Subscriptions');
    return {
      ...table,
      rows: table.rows.map((row) => ({
        clientId: String(row.clientId),
        filter: String(row.filter),
        qos: Number(row.qos),
        subscribedAt: row.subscribedAt === undefined ? undefined : Number(row.subscribedAt),
      })),
    };
  }

  private async retained() {
    const table = await this.scan('Retained');
    return {
      ...table,
      rows: table.rows.map((row) => ({
        topic: String(row.topic),
        qos: Number(row.qos),
        bytes: row.payload instanceof Uint8Array ? row.payload.length : 0,
        payload: preview(row.payload),
        publishedAt: Number(row.publishedAt),
      })),
    };
  }

  private stats() {
    const meter = this.options.meter();
    return {
      now: Date.now(),
      connections: this.options.traffic.views.length,
      rates: this.options.traffic.rates(),
      bill: billFor(meter),
      meter,
    };
  }
}
