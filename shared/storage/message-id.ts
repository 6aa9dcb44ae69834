import { randomUUID } from 'node:crypto';

/**
 * A message id that sorts by publish time within one publisher.
 *
 * @example
 * newMessageId(Date.now()); // '0mhx3k2a1-6f1c…'
 */
export function newMessageId(now: number): string {
  return `${now.toString(36).padStart(9, '0')}-${randomUUID()}`;
}
