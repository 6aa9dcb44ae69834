/**
 * The authentication port in the shape the CONNECT handler will ask: a decision that names the user
 * (the identity ACLs and client-id ownership use) or says why it refused. No AWS types here.
 */

/** What a CONNECT presents. The password is bytes: MQTT allows binary data [MQTT-3.1.3-11]. */
export interface Credentials {
  readonly clientId: string;
  readonly username?: string;
  readonly password?: Uint8Array;
  readonly sourceIp?: string;
}

/**
 * `bad-credentials`: credentials were presented and did not hold (CONNACK 4, MQTT 5 0x86).
 * `not-authorized`: nothing usable was presented, or the identity may not connect (5, 0x87).
 */
export type AuthDecision =
  | { readonly ok: true; readonly user?: string }
  | { readonly ok: false; readonly reason: 'bad-credentials' | 'not-authorized' };

/** Decides whether a CONNECT may proceed, and as whom. */
export interface Authenticator {
  authenticate(credentials: Credentials): Promise<AuthDecision>;
}

/** Called with failures of the services an authenticator depends on (a JWKS, a Lambda hook). */
export type AuthErrorReporter = (message: string, error: unknown) => void;

export const badCredentials: AuthDecision = { ok: false, reason: 'bad-credentials' };
export const notAuthorized: AuthDecision = { ok: false, reason: 'not-authorized' };
