import type { BrokerContext } from './context.js';

/**
 * Counts a user's new connection against the connections-per-user quota; false when the
 * user already has the most allowed. A connection it takes over (`replacing`) is not counted
 * twice. When full, ids whose connection record is gone (an end nobody reported, a CONNECT
 * that failed half-way) are dropped and the count is tried once more, so a lost end never
 * locks a user out. Anonymous connections and a quota of 0 count nothing.
 *
 * @example
 * if (!(await countUserConnection(ctx, 'alice', 'conn-1'))) refuse();
 */
export async function countUserConnection(
  ctx: BrokerContext,
  user: string | undefined,
  connectionId: string,
  replacing?: string,
): Promise<boolean> {
  const max = ctx.limits.maxConnectionsPerUser;
  if (user === undefined || max === 0) return true;
  if (await ctx.store.addUserConnection(user, connectionId, max, replacing)) return true;
  const counted = await ctx.store.userConnections(user);
  const records = await Promise.all(counted.map((id) => ctx.store.getConnection(id)));
  const gone = counted.filter((_, i) => records[i] === undefined);
  if (gone.length === 0) return false;
  for (const id of gone) await ctx.store.removeUserConnection(user, id);
  return ctx.store.addUserConnection(user, connectionId, max, replacing);
}
