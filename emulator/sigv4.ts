import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import { NodeSha256 } from '../shared/gateway/signed-post.js';

/** A request as it arrived: the path as sent (query included), its headers and its body. */
export interface ReceivedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string | Uint8Array;
}

/** Why a request is refused, as AWS answers it (HTTP 403), or undefined when its signature holds. */
export interface SignatureRefusal {
  readonly errorType: string;
  readonly message: string;
}

/** How far a request's X-Amz-Date may be from now, as AWS allows. */
const maxSkewMs = 15 * 60_000;

/**
 * Checks requests' SigV4 signatures as an AWS endpoint does: the credential names the known access
 * key, the service and the region; the request is signed again (method, path as sent, the headers
 * the Authorization names, the body) at its own X-Amz-Date with the key's secret; the signatures
 * must match, and the date must be within 15 minutes of now. A stated payload hash must be the body's.
 *
 * @example
 * const checker = new SignatureChecker({ credentials, region: 'us-east-1', service: 'execute-api' });
 * const refusal = await checker.check(request);
 * if (refusal) respond(403, refusal);
 */
export class SignatureChecker {
  private readonly signer: SignatureV4;

  constructor(
    private readonly expected: {
      readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
      readonly region: string;
      readonly service: string;
    },
  ) {
    this.signer = new SignatureV4({ ...expected, sha256: NodeSha256 });
  }

  async check(request: ReceivedRequest, now = Date.now()): Promise<SignatureRefusal | undefined> {
    const authorization = request.headers.authorization;
    if (!authorization) {
      return { errorType: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' };
    }
    const parsed = authorizationPattern.exec(authorization);
    if (!parsed) {
      return {
        errorType: 'IncompleteSignatureException',
        message: `Authorization header is not SigV4: ${authorization}`,
      };
    }
    const [, accessKeyId, day, region, service, signedHeaders] = parsed;
    if (accessKeyId !== this.expected.credentials.accessKeyId) {
      return {
        errorType: 'UnrecognizedClientException',
        message: 'The security token included in the request is invalid.',
      };
    }
    if (region !== this.expected.region || service !== this.expected.service) {
      return {
        errorType: 'InvalidSignatureException',
        message: `Credential should be scoped to ${this.expected.region}/${this.expected.service}, not ${region}/${service}`,
      };
    }
    const amzDate = String(request.headers['x-amz-date'] ?? '');
    const signingDate = dateOf(amzDate);
    if (!signingDate || amzDate.slice(0, 8) !== day) {
      return { errorType: 'IncompleteSignatureException', message: `X-Amz-Date is missing or not of ${day}` };
    }
    if (Math.abs(now - signingDate.getTime()) > maxSkewMs) {
      return {
        errorType: 'InvalidSignatureException',
        message: `Signature expired: ${amzDate} is more than 15 minutes from the server's time`,
      };
    }
    const body = Buffer.from(request.body);
    const statedHash = request.headers['x-amz-content-sha256'];
    if (statedHash !== undefined && statedHash !== createHash('sha256').update(body).digest('hex')) {
      return {
        errorType: 'InvalidSignatureException',
        message: 'The x-amz-content-sha256 header does not match the body',
      };
    }
    const [path, query = ''] = request.url.split('?');
    const again = await this.signer.sign(
      {
        method: request.method,
        protocol: 'https:',
        hostname: String(request.headers.host ?? ''),
        path,
        query: Object.fromEntries(new URLSearchParams(query)),
        headers: Object.fromEntries(
          signedHeaders.split(';').map((name) => [name, String(request.headers[name] ?? '')]),
        ),
        body,
      },
      { signingDate },
    );
    if (again.headers.authorization !== authorization) {
      return {
        errorType: 'InvalidSignatureException',
        message:
          'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
      };
    }
    return undefined;
  }
}

const authorizationPattern =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;

/** `20261202T141500Z` → the Date, or undefined. */
function dateOf(amzDate: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  return m ? new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`) : undefined;
}
