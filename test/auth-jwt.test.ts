import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
  UnsecuredJWT,
} from 'jose';
import { JwtAuthenticator, type JwtSettings } from '../shared/auth/jwt-authenticator.js';

// An issuer on 127.0.0.1: its JWKS, and (under /oidc) an OpenID discovery document pointing at it.
let server: Server;
let base: string;
let signing: { privateKey: CryptoKey; kid: string };
let other: { privateKey: CryptoKey };
const published: JWK[] = [];
const requests: string[] = [];

before(async () => {
  const pair = await generateKeyPair('RS256');
  signing = { privateKey: pair.privateKey, kid: 'key-1' };
  other = { privateKey: (await generateKeyPair('RS256')).privateKey };
  published.push({ ...(await exportJWK(pair.publicKey)), kid: 'key-1', alg: 'RS256', use: 'sig' });
  server = createServer((request, response) => {
    requests.push(request.url ?? '');
    const json = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (path === '/keys' || path === '/cognito/.well-known/jwks.json') json(200, { keys: published });
    else if (path === '/oidc/.well-known/openid-configuration') json(200, { jwks_uri: `${base}/keys` });
    else json(404, { message: 'not found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

const issuer = () => `${base}/issuer`;
const settings = (extra: Partial<JwtSettings> = {}): JwtSettings => ({
  issuer: issuer(),
  jwksUrl: `${base}/keys`,
  ...extra,
});

async function token(
  claims: JWTPayload = {},
  options: { key?: CryptoKey; kid?: string; alg?: string; issuer?: string; expires?: string | number } = {},
): Promise<Buffer> {
  const jwt = new SignJWT({ sub: 'device-7', ...claims })
    .setProtectedHeader({ alg: options.alg ?? 'RS256', kid: options.kid ?? signing.kid })
    .setIssuer(options.issuer ?? issuer())
    .setIssuedAt();
  if (options.expires !== undefined) jwt.setExpirationTime(options.expires);
  else jwt.setExpirationTime('5m');
  return Buffer.from(await jwt.sign(options.key ?? signing.privateKey));
}

const refusedBad = { ok: false, reason: 'bad-credentials' };

describe('JwtAuthenticator', () => {
  test('a valid token: ok, and the user is its sub', async () => {
    const auth = new JwtAuthenticator(settings());
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password: await token() }), {
      ok: true,
      user: 'device-7',
    });
  });

  test('the user claim is configurable (Cognito: cognito:username)', async () => {
    const auth = new JwtAuthenticator(settings({ userClaim: 'cognito:username' }));
    const password = await token({ 'cognito:username': 'alice' });
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password }), { ok: true, user: 'alice' });
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password: await token() }), refusedBad);
  });

  test('an expired token: bad-credentials; a little clock skew is tolerated', async () => {
    const now = Math.floor(Date.now() / 1000);
    const auth = new JwtAuthenticator(settings({ clockToleranceSeconds: 30 }));
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', password: await token({}, { expires: now - 120 }) }),
      refusedBad,
    );
    assert.equal(
      (await auth.authenticate({ clientId: 'c', password: await token({}, { expires: now - 10 }) })).ok,
      true,
    );
  });

  test('a token not valid yet (nbf) or without exp: bad-credentials', async () => {
    const auth = new JwtAuthenticator(settings());
    const future = Math.floor(Date.now() / 1000) + 600;
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', password: await token({ nbf: future }) }),
      refusedBad,
    );
    const noExp = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'RS256', kid: signing.kid })
      .setIssuer(issuer())
      .sign(signing.privateKey);
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password: Buffer.from(noExp) }), refusedBad);
  });

  test('a wrong issuer or a wrong audience: bad-credentials', async () => {
    const auth = new JwtAuthenticator(settings({ audience: ['mqtt-devices'] }));
    assert.deepEqual(
      await auth.authenticate({
        clientId: 'c',
        password: await token({ aud: 'mqtt-devices' }, { issuer: `${base}/evil` }),
      }),
      refusedBad,
    );
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', password: await token({ aud: 'web-app' }) }),
      refusedBad,
    );
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', password: await token() }),
      refusedBad,
      'no aud',
    );
    assert.equal(
      (await auth.authenticate({ clientId: 'c', password: await token({ aud: 'mqtt-devices' }) })).ok,
      true,
    );
  });

  test('a bad signature (another key under the published kid) or an unknown kid: bad-credentials', async () => {
    const auth = new JwtAuthenticator(settings());
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', password: await token({}, { key: other.privateKey }) }),
      refusedBad,
    );
    assert.deepEqual(
      await auth.authenticate({
        clientId: 'c',
        password: await token({}, { key: other.privateKey, kid: 'key-2' }),
      }),
      refusedBad,
    );
    const tampered = (await token()).toString().split('.');
    tampered[1] = Buffer.from(JSON.stringify({ sub: 'admin', iss: issuer(), exp: 4102444800 })).toString(
      'base64url',
    );
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', password: Buffer.from(tampered.join('.')) }),
      refusedBad,
    );
  });

  test('alg none and HS256 (the public key as an HMAC secret) are refused', async () => {
    const auth = new JwtAuthenticator(settings());
    const none = new UnsecuredJWT({ sub: 'admin' }).setIssuer(issuer()).setExpirationTime('5m').encode();
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password: Buffer.from(none) }), refusedBad);
    const secret = new TextEncoder().encode(JSON.stringify(published[0]));
    const hs = await new SignJWT({ sub: 'admin' })
      .setProtectedHeader({ alg: 'HS256', kid: signing.kid })
      .setIssuer(issuer())
      .setExpirationTime('5m')
      .sign(secret);
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password: Buffer.from(hs) }), refusedBad);
  });

  test('only the configured algorithms are accepted', async () => {
    const auth = new JwtAuthenticator(settings({ algorithms: ['ES256'] }));
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password: await token() }), refusedBad);
  });

  test('a password that is not a token: bad-credentials; no password: not-authorized', async () => {
    const auth = new JwtAuthenticator(settings());
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', password: Buffer.from('hunter2') }),
      refusedBad,
    );
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password: Buffer.from('a.b.c') }), refusedBad);
    assert.deepEqual(await auth.authenticate({ clientId: 'c' }), { ok: false, reason: 'not-authorized' });
  });

  test('username "match": the CONNECT user name must equal the claim; "ignore": any', async () => {
    const password = await token();
    const strict = new JwtAuthenticator(settings({ username: 'match' }));
    assert.deepEqual(await strict.authenticate({ clientId: 'c', username: 'other', password }), refusedBad);
    assert.deepEqual(await strict.authenticate({ clientId: 'c', password }), refusedBad);
    assert.equal((await strict.authenticate({ clientId: 'c', username: 'device-7', password })).ok, true);
    const lax = new JwtAuthenticator(settings({ username: 'ignore' }));
    assert.deepEqual(await lax.authenticate({ clientId: 'c', username: 'other', password }), {
      ok: true,
      user: 'device-7',
    });
  });

  test('the key set is fetched once per instance, not per CONNECT', async () => {
    const auth = new JwtAuthenticator(settings({ jwksUrl: `${base}/keys?cached` }));
    for (let i = 0; i < 3; i++)
      assert.equal((await auth.authenticate({ clientId: 'c', password: await token() })).ok, true);
    assert.equal(requests.filter((url) => url === '/keys?cached').length, 1);
  });

  test("without a JWKS URL: the jwks_uri of OpenID discovery, else Cognito's /.well-known/jwks.json", async () => {
    const oidc = new JwtAuthenticator({ issuer: `${base}/oidc` });
    assert.equal(
      (await oidc.authenticate({ clientId: 'c', password: await token({}, { issuer: `${base}/oidc` }) })).ok,
      true,
    );
    const cognito = new JwtAuthenticator({ issuer: `${base}/cognito` });
    assert.equal(
      (
        await cognito.authenticate({
          clientId: 'c',
          password: await token({}, { issuer: `${base}/cognito` }),
        })
      ).ok,
      true,
    );
    assert.ok(requests.includes('/cognito/.well-known/jwks.json'));
  });

  test('an unreachable key set: not-authorized, and reported', async () => {
    const reported: string[] = [];
    const auth = new JwtAuthenticator(settings({ jwksUrl: `${base}/missing` }), (message) =>
      reported.push(message),
    );
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password: await token() }), {
      ok: false,
      reason: 'not-authorized',
    });
    assert.equal(reported.length, 1);
    assert.match(reported[0], /JWT keys/);
  });
});
