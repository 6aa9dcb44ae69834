/**
 * A message id that sorts by publish time within one publisher: the time in
 * base 36, padded so ids compare as strings, then a unique suffix.
 *
 * @example
 * newMessageId(ctx.now(), ctx.newId()); // '0mhx3k2a1-6f1c…'
 */
export function newMessageId(now: number, unique: string): string {
  return `${now.toString(36).padStart(9, '0')}-${unique}`;
}
