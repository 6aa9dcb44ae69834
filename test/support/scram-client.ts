import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

// The client side of SCRAM-SHA-512 (RFC 5802), written apart from the broker's, to drive it in tests.
const hmac = (key: Uint8Array, text: string) => createHmac('sha512', key).update(text, 'utf8').digest();
const sha512 = (bytes: Uint8Array) => createHash('sha512').update(bytes).digest();
const pbkdf2Sha512 = (password: string, salt: Buffer, iterations: number) =>
  pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 64, 'sha512');

/**
 * A SCRAM-SHA-512 client: the messages it sends, from the password, and the check of the server's.
 *
 * @example
 * const client = scramClient('alice', 'pw');
 * const final = client.final(serverFirst); // then client.verify(serverFinal)
 */
export function scramClient(user: string, password: string, nonce = randomBytes(18).toString('base64')) {
  const bare = `n=${user.replaceAll('=', '=3D').replaceAll(',', '=2C')},r=${nonce}`;
  let expectedServerSignature: Buffer | undefined;
  return {
    first: `n,,${bare}`,
    /** client-final-message for the server-first-message. */
    final(serverFirst: string): string {
      const fields = new Map(serverFirst.split(',').map((p) => [p.slice(0, 1), p.slice(2)]));
      const salt = Buffer.from(fields.get('s') ?? '', 'base64');
      const iterations = Number(fields.get('i'));
      const salted = pbkdf2Sha512(password, salt, iterations);
      const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${fields.get('r')}`;
      const authMessage = `${bare},${serverFirst},${withoutProof}`;
      const clientKey = hmac(salted, 'Client Key');
      const signature = hmac(sha512(clientKey), authMessage);
      expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
      const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]));
      return `${withoutProof},p=${proof.toString('base64')}`;
    },
    /** Whether server-final proves the server knew the salted password. */
    verify(serverFinal: string): boolean {
      return (
        expectedServerSignature !== undefined &&
        serverFinal === `v=${expectedServerSignature.toString('base64')}`
      );
    },
  };
}
