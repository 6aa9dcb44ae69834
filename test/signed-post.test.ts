import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { SignatureChecker } from '../emulator/sigv4.js';
import { isTransientError } from '../shared/broker/inbound.js';
import { ManagementPoster, PostError } from '../shared/gateway/signed-post.js';

// API Gateway connection ids end in '=', which the path must carry encoded (and the signature twice encoded).
const connectionId = 'L0SM9cOFvHcCIhw=';
const credentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};
const region = 'eu-west-1';

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** What the next requests get: a status and optional error type each, or a dropped socket. */
let replies: Array<{ status: number; type?: string } | 'drop'> = [];
let received: Received[] = [];
let server: http.Server;
let endpoint: string;

before(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      const reply = replies.shift() ?? { status: 200 };
      if (reply === 'drop') {
        req.socket.destroy();
        return;
      }
      res.writeHead(reply.status, reply.type ? { 'x-amzn-errortype': reply.type } : {});
      res.end(reply.status === 200 ? '' : JSON.stringify({ message: `said ${reply.status}` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/prod`;
});
after(() => server.close());
beforeEach(() => {
  replies = [];
  received = [];
});

const poster = (attempts = 3) =>
  new ManagementPoster({
    endpoint,
    region,
    credentials,
    sockets: 4,
    retries: { attempts, baseDelayMs: 1, throttledBaseDelayMs: 1, maxDelayMs: 5 },
  });

const checker = new SignatureChecker({ credentials, region, service: 'execute-api' });

/** Whether a request's signature holds, checked as API Gateway (and the emulator's gateway) checks it. */
async function signatureHolds(request: Received): Promise<boolean> {
  return (await checker.check(request)) === undefined;
}

describe('ManagementPoster: PostToConnection as API Gateway takes it', () => {
  test('posts the frame to @connections/{id} under the stage, signed for execute-api in the region', async () => {
    const p = poster();
    try {
      assert.equal(await p.post(connectionId, 'IAIAAA=='), 'sent');
    } finally {
      p.destroy();
    }
    const [request] = received;
    assert.equal(request.method, 'POST');
    assert.equal(request.url, `/prod/@connections/${encodeURIComponent(connectionId)}`);
    assert.equal(request.body, 'IAIAAA==');
    assert.match(
      String(request.headers.authorization),
      new RegExp(`^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\\d{8}/${region}/execute-api/aws4_request, `),
    );
    assert.equal(await signatureHolds(request), true);
  });

  test("the check accepts the SDK's own PostToConnection and refuses a changed body", async () => {
    const sdk = new ApiGatewayManagementApiClient({ endpoint, region, credentials });
    try {
      await sdk.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'IAIAAA==' }));
    } finally {
      sdk.destroy();
    }
    const [request] = received;
    assert.equal(
      request.url,
      `/prod/@connections/${encodeURIComponent(connectionId)}`,
      'the same path as ours',
    );
    assert.equal(await signatureHolds(request), true);
    assert.equal(await signatureHolds({ ...request, body: 'IAIAAB==' }), false);
  });

  test("a role's session token goes with the request, signed, as Lambda's credentials need", async () => {
    const p = new ManagementPoster({
      endpoint,
      region,
      credentials: async () => ({ ...credentials, sessionToken: 'IQoJb3JpZ2luX2VjE' }),
      sockets: 1,
    });
    try {
      assert.equal(await p.post(connectionId, 'IAIAAA=='), 'sent');
    } finally {
      p.destroy();
    }
    const [request] = received;
    assert.equal(request.headers['x-amz-security-token'], 'IQoJb3JpZ2luX2VjE');
    assert.match(String(request.headers.authorization), /SignedHeaders=[^,]*x-amz-security-token/);
    assert.equal(await signatureHolds(request), true);
  });

  test('410 is a gone connection, not an error', async () => {
    replies = [{ status: 410, type: 'GoneException' }];
    const p = poster();
    try {
      assert.equal(await p.post(connectionId, 'IAIAAA=='), 'gone');
    } finally {
      p.destroy();
    }
    assert.equal(received.length, 1);
  });

  test('throttling, a 5xx and a dropped socket are retried, each request signed afresh', async () => {
    replies = [{ status: 429, type: 'LimitExceededException' }, 'drop', { status: 200 }];
    const p = poster();
    try {
      assert.equal(await p.post(connectionId, 'IAIAAA=='), 'sent');
    } finally {
      p.destroy();
    }
    assert.equal(received.length, 3);
    for (const request of received) assert.equal(await signatureHolds(request), true);
  });

  test("past the attempts, the last failure is thrown shaped as the SDK's, and judged transient", async () => {
    replies = [{ status: 503 }, { status: 503 }, { status: 503 }, { status: 200 }];
    const p = poster(3);
    const error = await p.post(connectionId, 'IAIAAA==').then(
      () => assert.fail('no error'),
      (e: unknown) => e,
    );
    p.destroy();
    assert.ok(error instanceof PostError);
    assert.equal(error.$metadata.httpStatusCode, 503);
    assert.equal(received.length, 3, 'three attempts, no fourth');
    assert.equal(isTransientError(error), true);
  });

  test("a client fault is thrown at once under API Gateway's error name, and not judged transient", async () => {
    replies = [{ status: 413, type: 'PayloadTooLargeException:http://internal.amazon.com/coral/x/' }];
    const p = poster();
    const error = await p.post(connectionId, 'IAIAAA==').then(
      () => assert.fail('no error'),
      (e: unknown) => e,
    );
    p.destroy();
    assert.ok(error instanceof PostError);
    assert.equal(error.name, 'PayloadTooLargeException');
    assert.match(error.message, /413 PayloadTooLargeException: said 413/);
    assert.equal(received.length, 1);
    assert.equal(isTransientError(error), false);
  });
});

describe('SignatureChecker: what API Gateway answers a request it does not take', () => {
  const signedRequest = async () => {
    const p = poster();
    try {
      await p.post(connectionId, 'IAIAAA==');
    } finally {
      p.destroy();
    }
    const request = received.at(-1);
    assert.ok(request);
    return request;
  };

  test('no Authorization: MissingAuthenticationTokenException', async () => {
    const request = await signedRequest();
    const { authorization: _, ...headers } = request.headers;
    const refusal = await checker.check({ ...request, headers });
    assert.equal(refusal?.errorType, 'MissingAuthenticationTokenException');
  });

  test('an access key it does not know: UnrecognizedClientException', async () => {
    const request = await signedRequest();
    const authorization = String(request.headers.authorization).replace('AKIDEXAMPLE', 'AKIDOTHER');
    const refusal = await checker.check({ ...request, headers: { ...request.headers, authorization } });
    assert.equal(refusal?.errorType, 'UnrecognizedClientException');
  });

  test('signed with another secret, or for another region: InvalidSignatureException', async () => {
    const request = await signedRequest();
    const otherSecret = new SignatureChecker({
      credentials: { ...credentials, secretAccessKey: 'not-the-secret' },
      region,
      service: 'execute-api',
    });
    assert.match(
      (await otherSecret.check(request))?.message ?? '',
      /does not match the signature you provided/,
    );
    const otherRegion = new SignatureChecker({ credentials, region: 'us-east-1', service: 'execute-api' });
    assert.equal((await otherRegion.check(request))?.errorType, 'InvalidSignatureException');
  });

  test('signed more than 15 minutes from the server clock: Signature expired', async () => {
    const request = await signedRequest();
    assert.equal(await checker.check(request, Date.now() + 14 * 60_000), undefined);
    const refusal = await checker.check(request, Date.now() + 16 * 60_000);
    assert.equal(refusal?.errorType, 'InvalidSignatureException');
    assert.match(refusal?.message ?? '', /Signature expired/);
  });
});
