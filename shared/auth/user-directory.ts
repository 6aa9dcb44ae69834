/**
 * Where users live: the `UserDirectory` port the table authenticator reads, and an in-memory one for
 * tests. The DynamoDB one is shared/auth/dynamo-user-directory.ts. No AWS types here.
 */

/** One user: the name CONNECT presents and its `$7$` password hash (shared/auth/mosquitto-hash.ts). */
export interface UserEntry {
  readonly username: string;
  readonly passwordHash: string;
}

/** Looks users up by name. */
export interface UserDirectory {
  /** The user's entry, or undefined when there is no such user. */
  find(username: string): Promise<UserEntry | undefined>;
}

/**
 * Users held in a map.
 *
 * @example
 * const directory = new MemoryUserDirectory([{ username: 'alice', passwordHash: await hashMosquittoPassword('pw') }]);
 */
export class MemoryUserDirectory implements UserDirectory {
  private readonly users = new Map<string, UserEntry>();
  /** Names looked up so far, in order: tests see that unknown users are looked up like known ones. */
  readonly lookups: string[] = [];

  constructor(users: Iterable<UserEntry> = []) {
    for (const user of users) this.users.set(user.username, user);
  }

  async find(username: string): Promise<UserEntry | undefined> {
    this.lookups.push(username);
    return this.users.get(username);
  }
}
