import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  GoneException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { WebSocket } from 'ws';
import { localCredentials, localRegion } from '../emulator/dynamodb-local.js';
import type { Emulator } from '../emulator/index.js';
import { filterAnchor } from '../shared/topics.js';
import { connectClient, emulatorDatabase, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// The emulated API Gateway must fail where AWS fails, or local tests hide bugs.
let emulator: Emulator & { logs: string[] };
let management: ApiGatewayManagementApiClient;
before(async () => {
  // Short enough for the idle test to be quick, long enough that a CONNACK on a busy machine beats it.
  emulator = await startTestEmulator({ limits: { idleTimeoutMs: 4000 } });
  management = new ApiGatewayManagementApiClient({
    endpoint: emulator.managementEndpoint,
    region: localRegion,
    credentials: localCredentials,
  });
});
after(async () => {
  management?.destroy();
  await emulator?.stop();
});

/** The id the gateway gave the newest connection. */
async function newestConnectionId(before: readonly string[]): Promise<string> {
  let id: string | undefined;
  await eventually('a new connection', () => {
    id = emulator.gateway.connectionIds.find((c) => !before.includes(c));
    return id !== undefined;
  });
  return id as string;
}

describe('WebSocket gateway', () => {
  test('the handshake echoes the mqtt subprotocol', async () => {
    const raw = await RawClient.open(emulator.url, { protocols: ['mqttv3.1', 'mqtt'] });
    assert.equal(raw.socket.protocol, 'mqtt');
    raw.close();
  });

  test('a handshake without the mqtt subprotocol is refused by $connect', async () => {
    await assert.rejects(RawClient.open(emulator.url, { protocols: ['graphql-ws'] }), /HTTP 400/);
    await assert.rejects(RawClient.open(emulator.url, { protocols: [] }), /HTTP 400/);
  });

  test('a binary frame closes the connection with 1003, as API Gateway does', async () => {
    const raw = await RawClient.open(emulator.url);
    raw.socket.send(Buffer.from([0xc0, 0x00]), { binary: true });
    assert.equal((await raw.closed).code, 1003);
  });

  test('a message over 128 KB closes the connection with 1009', async () => {
    const raw = await RawClient.open(emulator.url);
    raw.sendText('A'.repeat(128 * 1024 + 4));
    assert.equal((await raw.closed).code, 1009);
  });

  test('a connection idle past the idle timeout is closed', async () => {
    const raw = await RawClient.open(emulator.url);
    assert.equal((await raw.closed).code, 1001);
  });

  test('a garbage frame closes only its own connection; other clients keep working', async () => {
    // Pings keep the bystander from idling out while the garbage connections come and go.
    const bystander = await connectClient(emulator.url, { clientId: 'gw-bystander', keepalive: 1 });
    const received = inbox(bystander);
    await bystander.subscribeAsync('gw/still', { qos: 1 });
    for (const garbage of ['not base64!', 'AAAA', Buffer.from([0x30, 0xff, 0xff]).toString('base64'), '']) {
      const raw = await RawClient.open(emulator.url);
      raw.send(connectPacket(`gw-garbage-${garbage.length}`));
      await raw.next('connack');
      raw.sendText(garbage);
      await raw.closed;
    }
    await bystander.publishAsync('gw/still', 'alive', { qos: 1 });
    await eventually('delivery after the garbage', () => received.length === 1);
    assert.equal(bystander.connected, true);
    await bystander.endAsync();
  });
});

describe('management API through the real ApiGatewayManagementApiClient', () => {
  test('PostToConnection delivers a text frame; GetConnection describes it; DeleteConnection closes it', async () => {
    const known = emulator.gateway.connectionIds;
    const raw = await RawClient.open(emulator.url);
    const id = await newestConnectionId(known);
    await management.send(
      new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from([0xd0, 0x00]).toString('base64') }),
    );
    assert.equal((await raw.next('pingresp')).cmd, 'pingresp');
    const described = await management.send(new GetConnectionCommand({ ConnectionId: id }));
    assert.ok(described.ConnectedAt instanceof Date);
    assert.equal(described.Identity?.SourceIp, '127.0.0.1');
    await management.send(new DeleteConnectionCommand({ ConnectionId: id }));
    await raw.closed;
    assert.equal(raw.socket.readyState, WebSocket.CLOSED);
  });

  test('a closed or unknown connection answers 410 GoneException', async () => {
    const known = emulator.gateway.connectionIds;
    const raw = await RawClient.open(emulator.url);
    const id = await newestConnectionId(known);
    raw.close();
    await raw.closed;
    await eventually('the gateway to forget it', () => !emulator.gateway.connectionIds.includes(id));
    for (const command of [
      new PostToConnectionCommand({ ConnectionId: id, Data: 'wAA=' }),
      new GetConnectionCommand({ ConnectionId: id }),
      new DeleteConnectionCommand({ ConnectionId: 'never-existed' }),
    ]) {
      // biome-ignore lint/suspicious/noExplicitAny: the three commands share a client but not an input type.
      await assert.rejects(management.send(command as any), GoneException);
    }
  });

  test('a request not signed with the known credentials is refused with 403 and nothing is sent, as API Gateway does', async () => {
    const known = emulator.gateway.connectionIds;
    const raw = await RawClient.open(emulator.url);
    const id = await newestConnectionId(known);
    const stranger = new ApiGatewayManagementApiClient({
      endpoint: emulator.managementEndpoint,
      region: localRegion,
      credentials: { ...localCredentials, secretAccessKey: 'not-the-secret' },
    });
    try {
      await assert.rejects(
        stranger.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'wAA=' })),
        (error: Error) => error.name === 'InvalidSignatureException',
      );
      const unsigned = await fetch(`${emulator.managementEndpoint}/@connections/${encodeURIComponent(id)}`, {
        method: 'POST',
        body: 'wAA=',
      });
      assert.equal(unsigned.status, 403);
      assert.deepEqual(await unsigned.json(), { message: 'Missing Authentication Token' });
      // A signed PINGRESP arrives; the refused PINGREQs never reached the client.
      await management.send(new PostToConnectionCommand({ ConnectionId: id, Data: '0AA=' }));
      assert.equal((await raw.next('pingresp')).cmd, 'pingresp');
      assert.deepEqual(
        raw.packets.map((p) => p.cmd),
        [],
      );
    } finally {
      stranger.destroy();
      raw.close();
    }
  });
});

describe('stale connections', () => {
  test('a subscriber whose $disconnect never came is cleaned up on 410, not retried forever', async () => {
    const db = emulatorDatabase(emulator);
    // A session that points at a connection the gateway no longer has: as if its $disconnect was lost.
    await db.send(
      new PutCommand({
        TableName: emulator.tables.Sessions,
        Item: {
          clientId: 'gw-ghost',
          sessionId: 's1',
          connectionId: 'ghost-conn',
          protocolVersion: 4,
          cleanSession: true,
        },
      }),
    );
    await db.send(
      new PutCommand({
        TableName: emulator.tables.Subscriptions,
        Item: {
          anchor: filterAnchor('gw/ghost'),
          filterClient: 'gw/ghost\u0000gw-ghost',
          clientId: 'gw-ghost',
          sessionId: 's1',
          filter: 'gw/ghost',
          qos: 1,
        },
      }),
    );
    const live = await connectClient(emulator.url, { clientId: 'gw-live' });
    const received = inbox(live);
    await live.subscribeAsync('gw/ghost', { qos: 1 });
    await live.publishAsync('gw/ghost', 'one', { qos: 1 });
    await eventually('delivery to the live subscriber', () => received.length === 1);
    await emulator.settle();
    const ghost = await db.send(
      new GetCommand({ TableName: emulator.tables.Sessions, Key: { clientId: 'gw-ghost' } }),
    );
    assert.equal(ghost.Item, undefined, 'the stale clean session is removed after the 410');
    assert.equal(emulator.failedBatches.length, 0, 'the 410 did not fail the fan-out batch');
    await live.endAsync();
    db.destroy();
  });
});
