import { after, before } from 'node:test';
import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDbLocal,
  ensureTables,
  localCredentials,
  localRegion,
  startDynamoDbLocal,
} from '../emulator/dynamodb-local.js';
import { createDocumentClient, DynamoStore } from '../shared/storage/dynamo-store.js';
import { type TableId, tableDefinitions } from '../shared/tables.js';
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
