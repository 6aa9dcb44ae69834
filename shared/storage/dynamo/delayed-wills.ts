import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { ApplicationMessage, BrokerStore } from '../../ports.js';
import { ifConditionHolds } from './conditions.js';
import type { Database } from './database.js';
import { dueSessionIds, shardOf } from './shards.js';

type DelayedWillsPort = Pick<BrokerStore, 'deferWill' | 'willsDue' | 'takeDueWill'>;

/**
 * Partitions of the will index: wills are deferred at the rate clients drop, far below one
 * partition's 1,000 writes a second per shard; the per-second check costs one half-unit query
 * per shard, so few (docs/adr/0021-flow-control-server-keep-alive-will-delay.md).
 */
const willShards = 4;

/**
 * MQTT 5 wills that wait out their Will Delay Interval on the session's row, listed by the
 * sparse `byWillDue` index (docs/adr/0021-flow-control-server-keep-alive-will-delay.md).
 *
 * @example
 * const part = new DelayedWills({ db, tables, now: Date.now });
 * await part.deferWill('sensor-1', 'conn-1', will, Date.now() + 30_000);
 */
export class DelayedWills implements DelayedWillsPort {
  constructor(private readonly database: Database) {}

  async deferWill(
    clientId: string,
    connectionId: string,
    will: ApplicationMessage,
    dueAt: number,
  ): Promise<boolean> {
    const { db, tables } = this.database;
    return ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Sessions,
          Key: { clientId },
          UpdateExpression: 'SET pendingWill = :will, willDueAt = :due, willShard = :shard',
          ConditionExpression: 'connectionId = :c',
          ExpressionAttributeValues: {
            ':will': will,
            ':due': dueAt,
            ':shard': String(shardOf(clientId, willShards)),
            ':c': connectionId,
          },
        }),
      ),
    );
  }

  async willsDue(now: number): Promise<string[]> {
    return dueSessionIds(this.database, 'byWillDue', 'willShard', 'willDueAt', willShards, now);
  }

  async takeDueWill(clientId: string, now: number): Promise<ApplicationMessage | undefined> {
    const { db, tables } = this.database;
    let will: ApplicationMessage | undefined;
    // Fails when there is none, it is not due, or another caller took it.
    await ifConditionHolds(
      db
        .send(
          new UpdateCommand({
            TableName: tables.Sessions,
            Key: { clientId },
            UpdateExpression: 'REMOVE pendingWill, willDueAt, willShard',
            ConditionExpression: 'attribute_exists(pendingWill) AND willDueAt <= :now',
            ExpressionAttributeValues: { ':now': now },
            ReturnValues: 'UPDATED_OLD',
          }),
        )
        .then(({ Attributes }) => {
          will = Attributes?.pendingWill as ApplicationMessage | undefined;
        }),
    );
    return will;
  }
}
