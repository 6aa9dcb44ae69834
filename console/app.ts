/**
 * The emulator console's page: polls the emulator's JSON endpoints and renders them, and runs a
 * publish/subscribe playground through the browser build of the Nimbus client transport.
 * Bundled for the browser by the emulator (emulator/console-api.ts) with esbuild.
 */
import { connect, type MqttClient } from '../client/index.js';

const refreshMs = 1500;

/** A table cell: text, optionally with a class (`num`, `mono`…), a tooltip, or shown as a badge (`pill ok`). */
type Cell = string | { text: string; className?: string; title?: string; badge?: string };

interface Listing<T> {
  rows: T[];
  truncated: boolean;
  limit: number;
}

interface ClientRow {
  connectionId: string;
  clientId?: string;
  username?: string;
  protocolVersion?: number;
  keepAliveSeconds?: number;
  cleanSession?: boolean;
  state: string;
  connectedAt: number;
  publishesIn: number;
  publishesOut: number;
}
interface SessionRow {
  clientId: string;
  online: boolean;
  protocolVersion?: number;
  cleanSession: boolean;
  queued: number;
}
interface SubscriptionRow {
  clientId: string;
  filter: string;
  qos: number;
  subscribedAt?: number;
}
interface RetainedRow {
  topic: string;
  payload: string;
  qos: number;
  bytes: number;
  publishedAt: number;
}
interface Stats {
  now: number;
  connections: number;
  rates: { publishesInPerSecond: number; publishesOutPerSecond: number; windowSeconds: number };
  bill: { lines: Array<{ service: string; usage: string; usd: number }>; totalUsd: number };
}

function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return found as T;
}

const two = (n: number) => String(n).padStart(2, '0');
const clock = (at: number) => {
  const d = new Date(at);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
};

/** How long ago `at` was, compactly: `42 s`, `5 min`, `2 h 10 min`. */
function age(at: number, now: number): string {
  const seconds = Math.max(0, Math.round((now - at) / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Dollars with enough digits to show a local run's fractions of a cent. */
const usd = (amount: number) =>
  amount === 0 ? '$0' : amount < 0.01 ? `$${amount.toFixed(7)}` : `$${amount.toFixed(4)}`;

const lastRendered = new Map<string, string>();

/** Replaces a table body's rows in one step, and only when they changed, so the page does not flicker. */
function renderRows(id: string, rows: Cell[][], columns: number, empty: string): void {
  const key = JSON.stringify(rows);
  if (lastRendered.get(id) === key) return;
  lastRendered.set(id, key);
  const body = element(id);
  if (rows.length === 0) {
    const td = document.createElement('td');
    td.colSpan = columns;
    td.className = 'empty';
    td.textContent = empty;
    const tr = document.createElement('tr');
    tr.append(td);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement('tr');
      for (const cell of cells) {
        const td = document.createElement('td');
        if (typeof cell === 'string') td.textContent = cell;
        else if (cell.badge) {
          const badge = document.createElement('span');
          badge.className = cell.badge;
          badge.textContent = cell.text;
          td.append(badge);
        } else {
          td.textContent = cell.text;
          if (cell.className) td.className = cell.className;
          if (cell.title) td.title = cell.title;
        }
        tr.append(td);
      }
      return tr;
    }),
  );
}

function renderListing<T>(name: string, listing: Listing<T>, shown: number): void {
  element(`${name}-count`).textContent = `(${listing.truncated ? `${shown}+` : shown})`;
  element(`${name}-note`).textContent = listing.truncated
    ? `Showing the first ${listing.limit}; the table holds more.`
    : '';
}

const pill = (text: string, kind: 'ok' | 'wait' | '') => ({
  text,
  badge: kind ? `pill ${kind}` : 'pill',
});

async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { cache: 'no-store' });
  if (!response.ok) {
    const detail = await response.text().catch(() => '');
    throw new Error(`${path} answered ${response.status}${detail ? `: ${detail}` : ''}`);
  }
  return (await response.json()) as T;
}

async function refresh(): Promise<void> {
  const [clients, sessions, subscriptions, retained, stats] = await Promise.all([
    getJson<Listing<ClientRow>>('/api/clients'),
    getJson<Listing<SessionRow>>('/api/sessions'),
    getJson<Listing<SubscriptionRow>>('/api/subscriptions'),
    getJson<Listing<RetainedRow>>('/api/retained'),
    getJson<Stats>('/api/stats'),
  ]);
  const now = stats.now;
  renderRows(
    'clients',
    clients.rows.map((c) => [
      {
        text: c.clientId === undefined ? '–' : c.clientId || '(empty)',
        className: 'mono',
        title: `connection ${c.connectionId}`,
      },
      c.username ?? '–',
      c.protocolVersion === 5 ? '5.0' : c.protocolVersion === 4 ? '3.1.1' : '–',
      c.keepAliveSeconds === undefined ? '–' : c.keepAliveSeconds === 0 ? 'off' : `${c.keepAliveSeconds} s`,
      c.cleanSession === undefined ? '–' : c.cleanSession ? 'clean' : 'persistent',
      pill(c.state, c.state === 'connected' ? 'ok' : 'wait'),
      `${clock(c.connectedAt)} (${age(c.connectedAt, now)})`,
      { text: String(c.publishesIn), className: 'num' },
      { text: String(c.publishesOut), className: 'num' },
    ]),
    9,
    'No client is connected.',
  );
  renderListing('clients', clients, clients.rows.length);
  renderRows(
    'sessions',
    sessions.rows.map((s) => [
      { text: s.clientId, className: 'mono' },
      pill(s.online ? 'online' : 'offline', s.online ? 'ok' : ''),
      s.protocolVersion === 5 ? '5.0' : s.protocolVersion === 4 ? '3.1.1' : '–',
      s.cleanSession ? 'clean' : 'persistent',
      { text: String(s.queued), className: 'num' },
    ]),
    5,
    'No sessions.',
  );
  renderListing('sessions', sessions, sessions.rows.length);
  renderRows(
    'subscriptions',
    subscriptions.rows.map((s) => [
      { text: s.filter, className: 'mono' },
      { text: s.clientId, className: 'mono' },
      String(s.qos),
      s.subscribedAt === undefined ? '–' : clock(s.subscribedAt),
    ]),
    4,
    'No subscriptions.',
  );
  renderListing('subscriptions', subscriptions, subscriptions.rows.length);
  renderRows(
    'retained',
    retained.rows.map((r) => [
      { text: r.topic, className: 'mono' },
      { text: r.payload, title: r.payload },
      String(r.qos),
      { text: String(r.bytes), className: 'num' },
      clock(r.publishedAt),
    ]),
    5,
    'No retained messages.',
  );
  renderListing('retained', retained, retained.rows.length);
  renderRows(
    'bill',
    stats.bill.lines.map((line) => [
      line.service,
      { text: line.usage, className: 'wrap' },
      { text: usd(line.usd), className: 'num' },
    ]),
    3,
    'Nothing billed yet.',
  );
  element('bill-total').textContent = usd(stats.bill.totalUsd);
  element('rate-in').textContent = stats.rates.publishesInPerSecond.toFixed(1);
  element('rate-out').textContent = stats.rates.publishesOutPerSecond.toFixed(1);
  element('connection-count').textContent = String(stats.connections);
  element('updated').textContent = `updated ${clock(now)}`;
}

/** Polls forever; a failed poll shows why in the page, and the next good one clears it. */
async function poll(): Promise<void> {
  const banner = element('error');
  try {
    await refresh();
    banner.hidden = true;
  } catch (error) {
    banner.textContent = `Cannot read the emulator's state: ${(error as Error).message}. Is the emulator still running? Retrying every ${refreshMs / 1000} s.`;
    banner.hidden = false;
  }
  setTimeout(poll, refreshMs);
}

function addMessage(parts: Array<{ text: string; className: string }>): void {
  const list = element('messages');
  const item = document.createElement('li');
  for (const part of parts) {
    const span = document.createElement('span');
    span.className = part.className;
    span.textContent = part.text;
    item.append(span);
  }
  list.prepend(item);
  while (list.children.length > 100) list.lastElementChild?.remove();
}

const note = (text: string) =>
  addMessage([
    { text: clock(Date.now()), className: 'when' },
    { text, className: 'system' },
  ]);

/** The playground's MQTT client: connects to the emulator this page came from, over the Nimbus transport. */
function startPlayground(): void {
  const status = element('playground-status');
  const buttons = [
    element<HTMLButtonElement>('subscribe-button'),
    element<HTMLButtonElement>('publish-button'),
  ];
  const clientId = `console-${Math.random().toString(16).slice(2, 8)}`;
  const client: MqttClient = connect(`ws://${location.host}`, {
    clientId,
    protocolVersion: 5,
    reconnectPeriod: 2000,
  });
  const setConnected = (connected: boolean, text: string) => {
    status.textContent = text;
    for (const button of buttons) button.disabled = !connected;
  };
  setConnected(false, 'connecting…');
  client.on('connect', () => setConnected(true, `connected as ${clientId}`));
  client.on('reconnect', () => setConnected(false, 'reconnecting…'));
  client.on('close', () => setConnected(false, 'disconnected; retrying'));
  client.on('error', (error) => note(`client error: ${error.message}`));
  client.on('message', (topic, payload, packet) =>
    addMessage([
      { text: clock(Date.now()), className: 'when' },
      { text: topic, className: 'topic mono' },
      { text: new TextDecoder().decode(payload), className: 'payload' },
      { text: `q${packet.qos}${packet.retain ? ' retained' : ''}`, className: 'when' },
    ]),
  );

  element<HTMLFormElement>('subscribe-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const filter = element<HTMLInputElement>('subscribe-filter').value;
    const qos = Number(element<HTMLSelectElement>('subscribe-qos').value) as 0 | 1 | 2;
    try {
      const granted = await client.subscribeAsync(filter, { qos });
      const code = granted[0]?.qos ?? 0x80;
      note(
        code < 0x80
          ? `subscribed to ${filter} (granted QoS ${code})`
          : `subscription to ${filter} refused (0x${code.toString(16)})`,
      );
    } catch (error) {
      note(`subscribe failed: ${(error as Error).message}`);
    }
  });
  element<HTMLFormElement>('publish-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const topic = element<HTMLInputElement>('publish-topic').value;
    const payload = element<HTMLInputElement>('publish-payload').value;
    const qos = Number(element<HTMLSelectElement>('publish-qos').value) as 0 | 1 | 2;
    const retain = element<HTMLInputElement>('publish-retain').checked;
    try {
      await client.publishAsync(topic, payload, { qos, retain });
      note(`published to ${topic}`);
    } catch (error) {
      note(`publish failed: ${(error as Error).message}`);
    }
  });
}

startPlayground();
void poll();
