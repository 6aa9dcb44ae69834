/**
 * The broker's topic authorization checks, in one place: `$` topics are the broker's own and no
 * client writes them [MQTT-4.7.2-1]; everything else is the authorizer's call (docs/adr/0008-authorization.md).
 */
import type { AclSubject } from '../acl.js';
import { matchingFilter } from '../topics.js';
import type { BrokerContext } from './context.js';

/** Whether the subject may publish to a topic name (a PUBLISH or its will). */
export function mayPublish(ctx: BrokerContext, subject: AclSubject, topic: string): boolean {
  if (topic.startsWith('$')) return false;
  return ctx.authorizer?.mayPublish(subject, topic) ?? true;
}

/** Whether a message on `topic` may be delivered to the subject (fan-out and retained messages). */
export function mayRead(ctx: BrokerContext, subject: AclSubject, topic: string): boolean {
  return ctx.authorizer?.mayRead(subject, topic) ?? true;
}

/**
 * Whether the subject may SUBSCRIBE with a filter. A Shared Subscription is
 * judged by its topic filter: `$share/g/a/#` needs what `a/#` needs, whatever the ShareName.
 */
export function maySubscribe(ctx: BrokerContext, subject: AclSubject, filter: string): boolean {
  return ctx.authorizer?.maySubscribe(subject, matchingFilter(filter)) ?? true;
}
