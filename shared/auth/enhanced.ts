/**
 * The MQTT 5 enhanced authentication port (§4.12): a challenge/response exchange keyed by the
 * CONNECT's Authentication Method, carried by AUTH packets until CONNACK, and again on
 * re-authentication (docs/adr/0022-enhanced-authentication-and-sys-topics.md). An exchange spans
 * frames that different stateless instances handle, so whatever a method must remember between
 * steps is returned as `state` (a string the broker stores with a short expiry and hands back).
 * No AWS types here.
 */

/** Who is authenticating, as far as the CONNECT says. */
export interface AuthClient {
  readonly clientId: string;
  /** The CONNECT's User Name, if it had one (a method may ignore it and name the user itself). */
  readonly username?: string;
  /** The client's address as the gateway saw it, when known. */
  readonly sourceIp?: string;
}

/**
 * One step of an exchange. `continue`: send `data` in AUTH 0x18 and wait for the client's next
 * AUTH; keep `state` for it. `success`: CONNACK 0x00 (AUTH 0x00 on re-authentication) with `data`
 * as Authentication Data; `user` is the identity ACLs and client-id ownership use. `failure`:
 * CONNACK (or, on re-authentication, DISCONNECT) 0x86 for 'bad-credentials', 0x87 for
 * 'not-authorized', 0x8C for 'bad-method'.
 */
export type AuthStep =
  | { readonly step: 'continue'; readonly state: string; readonly data?: Uint8Array }
  | { readonly step: 'success'; readonly user?: string; readonly data?: Uint8Array }
  | { readonly step: 'failure'; readonly reason: 'bad-credentials' | 'not-authorized' | 'bad-method' };

/**
 * One or more authentication methods (SCRAM-SHA-512, a token scheme of your own, …).
 *
 * @example
 * const step = await authenticator.start('SCRAM-SHA-512', clientFirst, { clientId: 'c1' });
 * if (step.step === 'continue') await authenticator.continue('SCRAM-SHA-512', step.state, clientFinal, client);
 */
export interface EnhancedAuthenticator {
  /** The Authentication Method names it answers, as clients spell them. */
  readonly methods: readonly string[];
  /** The first step, from the CONNECT's (or the re-authenticating AUTH's) Authentication Data. */
  start(method: string, data: Uint8Array | undefined, client: AuthClient): Promise<AuthStep>;
  /** A later step, from the state the previous step returned and the client's AUTH data. */
  continue(
    method: string,
    state: string,
    data: Uint8Array | undefined,
    client: AuthClient,
  ): Promise<AuthStep>;
}

/** A step that ends the exchange with a failure. */
export const authFailure = (reason: 'bad-credentials' | 'not-authorized' | 'bad-method'): AuthStep => ({
  step: 'failure',
  reason,
});

/**
 * Several authenticators behind one: each method goes to the first that lists it; an unknown
 * method fails as 'bad-method'.
 *
 * @example
 * const methods = enhancedMethods([scram, myTokenScheme]);
 * methods.methods; // ['SCRAM-SHA-512', 'X-TOKEN']
 */
export function enhancedMethods(authenticators: readonly EnhancedAuthenticator[]): EnhancedAuthenticator {
  const byMethod = new Map<string, EnhancedAuthenticator>();
  for (const authenticator of authenticators)
    for (const method of authenticator.methods)
      if (!byMethod.has(method)) byMethod.set(method, authenticator);
  return {
    methods: [...byMethod.keys()],
    start: async (method, data, client) =>
      byMethod.get(method)?.start(method, data, client) ?? authFailure('bad-method'),
    continue: async (method, state, data, client) =>
      byMethod.get(method)?.continue(method, state, data, client) ?? authFailure('bad-method'),
  };
}
