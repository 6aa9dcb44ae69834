import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, test } from 'node:test';
import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ExecuteStatementCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import {
  type DynamoDbLocal,
  ensureTables,
  localCredentials,
  localRegion,
  startDynamoDbLocal,
} from '../emulator/dynamodb-local.js';
import {
  type ConsumedCapacityRecord,
  consumedCapacityChannel,
} from '../shared/storage/dynamo/consumed-capacity.js';
import { createDocumentClient, DynamoStore } from '../shared/storage/dynamo-store.js';
import { loginAttemptsTable, type TableId, tableDefinitions } from '../shared/tables.js';
import { storeConformance } from './support/store-conformance.js';

// The functions deploy on Node.js 22+; the SDK's notice about this machine's Node 20 would drown the test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// createDocumentClient, as production calls it, takes region and credentials from the environment.
process.env.AWS_REGION = localRegion;
process.env.AWS_ACCESS_KEY_ID = localCredentials.accessKeyId;
process.env.AWS_SECRET_ACCESS_KEY = localCredentials.secretAccessKey;

let ddb: DynamoDbLocal;
let admin: DynamoDBClient;
before(async () => {
  ddb = await startDynamoDbLocal();
  admin = new DynamoDBClient({ endpoint: ddb.endpoint, region: localRegion, credentials: localCredentials });
});
after(async () => {
  admin?.destroy();
  await ddb?.stop();
});

let opened = 0;
// Each case gets its own fresh tables, so scans and '#' filters see only what the case wrote.
storeConformance('DynamoStore on DynamoDB Local', async ({ now }) => {
  const prefix = `conformance-${++opened}`;
  const tables = tableDefinitions.map((definition) => ({
    definition,
    tableName: `${prefix}-${definition.id}`,
  }));
  await ensureTables(admin, tables);
  const db = createDocumentClient({ dynamoEndpoint: ddb.endpoint });
  const names = Object.fromEntries(tables.map((t) => [t.definition.id, t.tableName])) as Record<
    TableId,
    string
  >;
  return {
    store: new DynamoStore(db, names, { now }),
    async close() {
      db.destroy();
      await Promise.all(tables.map((t) => admin.send(new DeleteTableCommand({ TableName: t.tableName }))));
    },
  };
});

test('the store reports each DynamoDB request and its units on the diagnostics channel, and asks for none unheard', async () => {
  const TableName = 'capacity-LoginAttempts';
  await ensureTables(admin, [{ definition: loginAttemptsTable, tableName: TableName }]);
  const db = createDocumentClient({ dynamoEndpoint: ddb.endpoint });
  const unheard = await db.send(new PutCommand({ TableName, Item: { key: 'a', note: 'x' } }));
  assert.equal(unheard.ConsumedCapacity, undefined, 'no listener: the request is as on AWS');
  const seen: ConsumedCapacityRecord[] = [];
  const listen = (record: unknown) => seen.push(record as ConsumedCapacityRecord);
  subscribe(consumedCapacityChannel.name, listen);
  try {
    await db.send(new PutCommand({ TableName, Item: { key: 'b', note: 'x' } }));
    // 1.5 KB: two write units (1 KB each), one strongly consistent read unit (4 KB each).
    await db.send(new PutCommand({ TableName, Item: { key: 'c', note: 'x'.repeat(1500) } }));
    const read = await db.send(new GetCommand({ TableName, Key: { key: 'c' }, ConsistentRead: true }));
    assert.equal(read.Item?.note.length, 1500, 'the reply is otherwise unchanged');
    // DynamoDB Local reports no capacity for PartiQL: the items' size stands in (b and c, ~1.5 KB: 1 unit).
    await db.send(
      new ExecuteStatementCommand({
        Statement: `SELECT * FROM "${TableName}" WHERE "key" IN [?, ?]`,
        Parameters: ['b', 'c'],
        ConsistentRead: true,
      }),
    );
    await assert.rejects(
      db.send(
        new PutCommand({
          TableName,
          Item: { key: 'c' },
          ConditionExpression: 'attribute_not_exists(#k)',
          ExpressionAttributeNames: { '#k': 'key' },
        }),
      ),
      { name: 'ConditionalCheckFailedException' },
    );
  } finally {
    unsubscribe(consumedCapacityChannel.name, listen);
    db.destroy();
  }
  assert.deepEqual(seen, [
    { operation: 'PutItem', readUnits: 0, writeUnits: 1 },
    { operation: 'PutItem', readUnits: 0, writeUnits: 2 },
    { operation: 'GetItem', readUnits: 1, writeUnits: 0 },
    { operation: 'ExecuteStatement', readUnits: 1, writeUnits: 0 },
    // A refused request is a request; its reply carries no units.
    { operation: 'PutItem', readUnits: 0, writeUnits: 0 },
  ]);
});
