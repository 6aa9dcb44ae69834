import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { FanOutPage } from '../shared/broker/fanout-batch.js';
import { isFanOutPageEvent, lambdaPageRunner, pageFromEvent } from '../shared/fanout-pages.js';
import type { StoredMessage } from '../shared/ports.js';
import { messageFromStreamImage } from '../shared/storage/stream-record.js';

// A page of a large fan-out travels as a Lambda event: the stream images of the batch (bytes as
// base64, as the stream delivers them) and the page's subscriptions.

/** A stream image as the event source delivers it: JSON, binary attributes base64. */
function imageOf(fields: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify(marshall(fields), (_key, value) =>
      value instanceof Uint8Array || (value && value.type === 'Buffer')
        ? Buffer.from(value.data ?? value).toString('base64')
        : value,
    ),
  ) as Record<string, unknown>;
}

/** A Lambda client that hands each Invoke payload to `answer`. */
function fakeLambda(answer: (event: unknown) => { body: string; error?: string }): {
  client: LambdaClient;
  events: unknown[];
} {
  const events: unknown[] = [];
  const client = {
    send: async (command: { input: { Payload: Uint8Array; InvocationType: string } }) => {
      assert.equal(command.input.InvocationType, 'RequestResponse');
      const event = JSON.parse(Buffer.from(command.input.Payload).toString('utf8')) as unknown;
      events.push(event);
      const { body, error } = answer(event);
      return { Payload: Buffer.from(body), ...(error ? { FunctionError: error } : {}) };
    },
  } as unknown as LambdaClient;
  return { client, events };
}

describe('fan-out page events', () => {
  const image = imageOf({
    publisher: 'p',
    messageId: 'm1',
    topic: 'news/x',
    payload: new Uint8Array([0, 255, 10]),
    qos: 1,
    retain: false,
    publishedAt: 1,
  });
  const message = messageFromStreamImage(image) as StoredMessage;
  const page: FanOutPage = {
    messages: [message],
    matches: [['news/x', [{ clientId: 's1', sessionId: 'x', filter: 'news/#', qos: 1, subscribedAt: 0 }]]],
  };

  test('a page goes out as the batch images and comes back as the same messages, bytes intact', async () => {
    const { client, events } = fakeLambda(() => ({ body: '{"sent":1,"queued":0,"dropped":0,"gone":0}' }));
    const result = await lambdaPageRunner(client, 'fanout', new Map([[message, image]]))(page);
    assert.deepEqual(result, { sent: 1, queued: 0, dropped: 0, gone: 0 });
    const [event] = events;
    assert.ok(isFanOutPageEvent(event));
    const back = pageFromEvent(event);
    assert.deepEqual(back.matches, page.matches);
    assert.deepEqual([...(back.messages[0]?.payload ?? [])], [0, 255, 10]);
    assert.equal(back.messages[0]?.topic, 'news/x');
    assert.equal(isFanOutPageEvent({ Records: [] }), false);
  });

  test('a page whose invocation failed rejects, naming the function and its error', async () => {
    const { client } = fakeLambda(() => ({ body: '{"errorMessage":"boom"}', error: 'Unhandled' }));
    await assert.rejects(
      lambdaPageRunner(client, 'fanout', new Map([[message, image]]))(page),
      /fanout failed \(Unhandled\).*boom/,
    );
  });
});
