/**
 * A custom authorizer: a function of the operator's (a Lambda function on AWS) that is asked about
 * each CONNECT. No AWS types here; shared/auth/lambda-authorizer.ts invokes a Lambda function.
 */
import {
  type AuthDecision,
  type AuthErrorReporter,
  type Authenticator,
  type Credentials,
  notAuthorized,
} from '../auth.js';

/** What the hook receives: the CONNECT's credentials, the password as base64 (it may be binary). */
export interface AuthorizerRequest {
  readonly clientId: string;
  readonly username?: string;
  readonly password?: string;
  readonly sourceIp?: string;
}

/** What the hook answers: whether the client may connect, and optionally as which user. */
export interface AuthorizerResponse {
  readonly allow: boolean;
  /** The identity ACLs and client-id ownership use. @default the CONNECT user name */
  readonly user?: string;
  /** Why a refusal. @default 'not-authorized' */
  readonly reason?: 'bad-credentials' | 'not-authorized';
}

/** Calls the hook and returns its parsed answer. */
export interface AuthorizerInvoker {
  invoke(request: AuthorizerRequest): Promise<unknown>;
}

/** The hook's answer, or undefined when it is not one. */
export function parseAuthorizerResponse(value: unknown): AuthorizerResponse | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { allow, user, reason } = value as Record<string, unknown>;
  if (typeof allow !== 'boolean') return undefined;
  if (user !== undefined && (typeof user !== 'string' || user === '')) return undefined;
  if (reason !== undefined && reason !== 'bad-credentials' && reason !== 'not-authorized') return undefined;
  return { allow, user, reason };
}

/**
 * Asks the hook. A hook that fails or answers something else refuses the client (`not-authorized`)
 * and is reported: failing closed.
 *
 * @example
 * const auth = new HookAuthenticator(new LambdaAuthorizer(lambda, 'arn:aws:lambda:…:function:authorize'));
 * await auth.authenticate({ clientId: 'c1', username: 'alice', password }); // { ok: true, user: 'alice' }
 */
export class HookAuthenticator implements Authenticator {
  constructor(
    private readonly invoker: AuthorizerInvoker,
    private readonly onError: AuthErrorReporter = () => {},
  ) {}

  async authenticate({ clientId, username, password, sourceIp }: Credentials): Promise<AuthDecision> {
    const request: AuthorizerRequest = {
      clientId,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password: Buffer.from(password).toString('base64') }),
      ...(sourceIp === undefined ? {} : { sourceIp }),
    };
    let answer: unknown;
    try {
      answer = await this.invoker.invoke(request);
    } catch (error) {
      this.onError('The authorizer function failed; the client is refused', error);
      return notAuthorized;
    }
    const response = parseAuthorizerResponse(answer);
    if (!response) {
      this.onError(
        'The authorizer function must answer { "allow": boolean, "user"?: string }; the client is refused',
        answer,
      );
      return notAuthorized;
    }
    if (!response.allow) return { ok: false, reason: response.reason ?? 'not-authorized' };
    const user = response.user ?? username;
    return user === undefined ? { ok: true } : { ok: true, user };
  }
}
