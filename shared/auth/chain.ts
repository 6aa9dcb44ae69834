/**
 * Several authenticators asked in turn. No AWS types here.
 */
import { type AuthDecision, type Authenticator, type Credentials, notAuthorized } from '../auth.js';

/**
 * Asks each authenticator in order; the first that says ok wins and the rest are not asked. When all
 * refuse, `bad-credentials` (some credentials presented were checked and failed: the client can fix
 * them) wins over `not-authorized` (nothing usable was presented, or the identity may not connect).
 *
 * @example
 * const auth = new AuthenticatorChain([jwt, table, hook]);
 * await auth.authenticate({ clientId: 'c1', username: 'alice', password }); // the first ok, or the refusal
 */
export class AuthenticatorChain implements Authenticator {
  constructor(private readonly authenticators: readonly Authenticator[]) {
    if (authenticators.length === 0)
      throw new Error('An authenticator chain needs at least one authenticator');
  }

  async authenticate(credentials: Credentials): Promise<AuthDecision> {
    let refusal: AuthDecision = notAuthorized;
    for (const authenticator of this.authenticators) {
      const decision = await authenticator.authenticate(credentials);
      if (decision.ok) return decision;
      if (decision.reason === 'bad-credentials') refusal = decision;
    }
    return refusal;
  }
}
