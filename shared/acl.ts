/**
 * Topic authorization in Mosquitto's ACL-file format (`acl_file`), and the pure decisions made
 * with it (docs/adr/0008-authorization.md). No I/O, no AWS types.
 *
 * Format, as Mosquitto reads it: `#` comment lines; `topic [read|write|readwrite|deny] FILTER`
 * lines before the first `user` line apply to anonymous clients, after `user NAME` to that user;
 * `pattern [read|write|readwrite|deny] FILTER` lines apply to every client, with `%u` replaced by
 * the user name and `%c` by the client id. No access word means readwrite.
 *
 * Semantics: a client may do only what some line grants it; a matching `deny` line wins over any
 * grant (Mosquitto: "deny topics are handled before topics that grant read/write access").
 */
import { isValidTopicFilter, topicMatches } from './topics.js';

export type AclAccess = 'read' | 'write' | 'readwrite' | 'deny';

/** One `topic` or `pattern` line. */
export interface AclRule {
  readonly access: AclAccess;
  readonly filter: string;
  /** 1-based line in the file, for messages. */
  readonly line: number;
}

/** A parsed ACL file. */
export interface AclDocument {
  /** `topic` lines before the first `user` line: clients without a user. */
  readonly anonymous: readonly AclRule[];
  /** `topic` lines of each `user` block. */
  readonly users: ReadonlyMap<string, readonly AclRule[]>;
  /** `pattern` lines, wherever they stand: every client, after substitution. */
  readonly patterns: readonly AclRule[];
}

/** Who asks: the authenticated user (absent: anonymous) and the client id. */
export interface AclSubject {
  readonly user?: string;
  readonly clientId: string;
}

const accessWords = new Set<AclAccess>(['read', 'write', 'readwrite', 'deny']);

/**
 * Parses an ACL file, throwing on the first line it cannot read (with its number), so a mistake
 * stops the broker at start instead of silently denying or allowing.
 *
 * @example
 * const acl = parseAcl('user alice\ntopic readwrite alice/#\npattern read devices/%c/#\n');
 * acl.users.get('alice'); // [{ access: 'readwrite', filter: 'alice/#', line: 2 }]
 */
export function parseAcl(text: string): AclDocument {
  const anonymous: AclRule[] = [];
  const users = new Map<string, AclRule[]>();
  const patterns: AclRule[] = [];
  let current = anonymous;
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const [keyword] = trimmed.split(/\s+/, 1);
    const rest = trimmed.slice(keyword.length).trim();
    switch (keyword) {
      case 'user': {
        if (rest === '') throw new Error(`ACL line ${line}: "user" needs a user name`);
        const rules = users.get(rest) ?? [];
        users.set(rest, rules);
        current = rules;
        return;
      }
      case 'topic':
        current.push(ruleOf(rest, line, keyword));
        return;
      case 'pattern':
        patterns.push(ruleOf(rest, line, keyword));
        return;
      default:
        throw new Error(
          `ACL line ${line}: unknown keyword "${keyword}"; expected "user", "topic" or "pattern"`,
        );
    }
  });
  return { anonymous, users, patterns };
}

function ruleOf(rest: string, line: number, keyword: string): AclRule {
  const [first] = rest.split(/\s+/, 1);
  const worded = accessWords.has(first as AclAccess) && rest.length > first.length;
  const access = worded ? (first as AclAccess) : 'readwrite';
  const filter = worded ? rest.slice(first.length).trim() : rest;
  if (filter === '') throw new Error(`ACL line ${line}: "${keyword}" needs a topic filter`);
  // Substituted later: check the filter with placeholders standing for one ordinary level's text.
  if (!isValidTopicFilter(filter.replaceAll('%u', 'u').replaceAll('%c', 'c'))) {
    throw new Error(
      `ACL line ${line}: "${filter}" is not a valid topic filter ('#' only last and alone, '+' alone in its level)`,
    );
  }
  return { access, filter, line };
}

/**
 * The filter of a pattern for this subject, or undefined when it does not apply: `%u` without a
 * user, or a user name or client id holding '/', '+' or '#', which would widen the pattern to
 * other clients' topics.
 */
function substitute(filter: string, subject: AclSubject): string | undefined {
  const unsafe = (value: string) => /[/+#]/.test(value);
  if (filter.includes('%u')) {
    if (subject.user === undefined || unsafe(subject.user)) return undefined;
    filter = filter.replaceAll('%u', subject.user);
  }
  if (filter.includes('%c')) {
    if (unsafe(subject.clientId)) return undefined;
    filter = filter.replaceAll('%c', subject.clientId);
  }
  return filter;
}

/** The rules that apply to a subject, patterns substituted. */
export function rulesFor(acl: AclDocument, subject: AclSubject): AclRule[] {
  const own = subject.user === undefined ? acl.anonymous : (acl.users.get(subject.user) ?? []);
  const patterns = acl.patterns.flatMap((rule) => {
    const filter = substitute(rule.filter, subject);
    return filter === undefined ? [] : [{ ...rule, filter }];
  });
  return [...own, ...patterns];
}

function grants(rule: AclRule, access: 'read' | 'write'): boolean {
  return rule.access === access || rule.access === 'readwrite';
}

/**
 * Whether the subject may publish to (`write`) or receive a message on (`read`) a topic name.
 *
 * @example
 * aclAllows(parseAcl('user a\ntopic read x/#'), { user: 'a', clientId: 'c' }, 'read', 'x/1'); // true
 */
export function aclAllows(
  acl: AclDocument,
  subject: AclSubject,
  access: 'read' | 'write',
  topic: string,
): boolean {
  const rules = rulesFor(acl, subject).filter((rule) => topicMatches(rule.filter, topic));
  if (rules.some((rule) => rule.access === 'deny')) return false;
  return rules.some((rule) => grants(rule, access));
}

/**
 * Whether every topic `inner` matches is matched by `outer`: `a/#` covers `a/+/b`, `#` covers
 * `a/#`, `a/#` does not cover `#`. A filter whose first level is a wildcard covers no `$` topic
 * [MQTT-4.7.2-1], so `#` does not cover `$SYS/#`.
 *
 * @example
 * filterCovers('a/#', 'a/+'); // true
 * filterCovers('a/+', 'a/#'); // false
 */
export function filterCovers(outer: string, inner: string): boolean {
  if (inner.startsWith('$') && (outer.startsWith('+') || outer.startsWith('#'))) return false;
  const o = outer.split('/');
  const i = inner.split('/');
  for (let n = 0; n < o.length; n++) {
    if (o[n] === '#') return true;
    if (n >= i.length) return false;
    if (i[n] === '#') return false; // inner spans any number of levels here; outer does not
    if (o[n] !== '+' && (i[n] === '+' || o[n] !== i[n])) return false;
  }
  // 'a/#' also matches 'a', so inner 'a/#' is longer than outer 'a' and not covered: lengths must agree.
  return o.length === i.length;
}

/**
 * Whether the subject may SUBSCRIBE with a filter: a read grant must cover the whole filter (a
 * user granted `a/#` may subscribe to `a/#` or `a/b`, not to `#`), and no deny line may cover it.
 * A deny inside a granted filter (grant `#`, deny `secret/#`) leaves the subscription allowed:
 * the fan-out then withholds each message on a denied topic (`aclAllows` with 'read').
 *
 * @example
 * aclAllowsSubscribe(parseAcl('user a\ntopic read x/#'), { user: 'a', clientId: 'c' }, '#'); // false
 */
export function aclAllowsSubscribe(acl: AclDocument, subject: AclSubject, filter: string): boolean {
  const rules = rulesFor(acl, subject).filter((rule) => filterCovers(rule.filter, filter));
  if (rules.some((rule) => rule.access === 'deny')) return false;
  return rules.some((rule) => grants(rule, 'read'));
}

/**
 * The broker's authorization port: what a client may publish, receive and subscribe to. Absent
 * from the broker context, every client may do everything except write `$` topics.
 */
export interface Authorizer {
  mayPublish(subject: AclSubject, topic: string): boolean;
  mayRead(subject: AclSubject, topic: string): boolean;
  maySubscribe(subject: AclSubject, filter: string): boolean;
}

/**
 * The Authorizer of an ACL file: a client may do only what the file grants it.
 *
 * @example
 * const authorizer = new AclAuthorizer(parseAcl(readFileSync('acl', 'utf8')));
 * authorizer.mayPublish({ user: 'alice', clientId: 'c' }, 'alice/x'); // true if granted
 */
export class AclAuthorizer implements Authorizer {
  constructor(readonly acl: AclDocument) {}
  mayPublish(subject: AclSubject, topic: string): boolean {
    return aclAllows(this.acl, subject, 'write', topic);
  }
  mayRead(subject: AclSubject, topic: string): boolean {
    return aclAllows(this.acl, subject, 'read', topic);
  }
  maySubscribe(subject: AclSubject, filter: string): boolean {
    return aclAllowsSubscribe(this.acl, subject, filter);
  }
}
