/**
 * Drives bench/socket-swarm.ts from the measuring process: starts the subscribers' sockets in their
 * own process, gives each a subscribed session, and times one publish to all of them from their
 * side (first and last arrival), without the measuring clients sharing the broker's process.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { localCredentials, localRegion } from '../emulator/dynamodb-local.js';
import type { Emulator } from '../emulator/index.js';
import type { QoS } from '../shared/ports.js';
import { DynamoStore } from '../shared/storage/dynamo-store.js';
import type { SwarmReply, SwarmRequest, SwarmTally } from './socket-swarm.js';

export type { SwarmTally } from './socket-swarm.js';

/**
 * The subscribers' sockets, in a child process.
 *
 * @example
 * const swarm = await SocketSwarm.start(emulator.url, 10_000);
 * const { once } = await swarm.tally('burst/all');
 */
export class SocketSwarm {
  private constructor(
    private readonly child: ChildProcess,
    readonly opened: number,
  ) {}

  /** Opens `count` WebSocket connections (wire contract, subprotocol `mqtt`) and resolves once all are open. */
  static async start(url: string, count: number): Promise<SocketSwarm> {
    const child = fork(new URL('./socket-swarm.ts', import.meta.url), [url, String(count)], {
      execArgv: ['--import', 'tsx'],
    });
    const [reply] = (await Promise.race([
      once(child, 'message'),
      once(child, 'exit').then(([code]) => {
        throw new Error(`the subscribers' process exited (${code}) before opening its sockets`);
      }),
    ])) as [SwarmReply];
    if (!('opened' in reply)) throw new Error('the subscribers process answered out of turn');
    return new SocketSwarm(child, reply.opened);
  }

  /** What the sockets got of `topic` so far. */
  async tally(topic: string): Promise<SwarmTally> {
    const answer = once(this.child, 'message') as Promise<[SwarmReply]>;
    this.child.send({ tally: topic } satisfies SwarmRequest);
    const [reply] = await answer;
    if (!('tally' in reply)) throw new Error('the subscribers process answered out of turn');
    return reply.tally;
  }

  /** Waits until every socket got `topic` at least once, or `timeoutMs` passed; the last tally either way. */
  async untilAllGot(topic: string, timeoutMs: number): Promise<SwarmTally> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const tally = await this.tally(topic);
      if (tally.none === 0 || Date.now() > deadline) return tally;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  close(): void {
    if (this.child.connected) this.child.send('close' satisfies SwarmRequest);
  }
}

/**
 * Gives each open connection of the emulator a clean 3.1.1 session subscribed to `filter`, written
 * straight to DynamoDB as the message function would after CONNECT and SUBSCRIBE: 10,000 of those
 * round trips would take this machine many minutes, and the burst measures the fan-out, not them.
 * The client ids are `sub-<connection id>`.
 *
 * @example
 * await plantSubscribers(emulator, emulator.gateway.connectionIds, 'burst/all');
 */
export async function plantSubscribers(
  emulator: Emulator,
  connectionIds: readonly string[],
  filter: string,
  qos: QoS = 0,
): Promise<void> {
  const db = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: emulator.dynamoEndpoint,
      region: localRegion,
      credentials: localCredentials,
    }),
  );
  const store = new DynamoStore(db, emulator.tables, { now: Date.now });
  const subscribedAt = Date.now() - 1_000;
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < connectionIds.length) {
          const connectionId = connectionIds[next++] as string;
          const clientId = `sub-${connectionId}`;
          const sessionId = `s-${connectionId}`;
          await store.replaceSession(
            { clientId, sessionId, connectionId, protocolVersion: 4, cleanSession: true },
            undefined,
          );
          await store.putSubscriptions([{ clientId, sessionId, filter, qos, subscribedAt }]);
        }
      }),
    );
  } finally {
    db.destroy();
  }
}
