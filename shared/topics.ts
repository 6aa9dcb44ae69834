/**
 * Topic names, topic filters and the anchors under which subscriptions are
 * stored (docs/adr/0002-subscription-keys.md). Pure functions, no I/O.
 */

const maxUtf8Bytes = 65_535;

function isValidUtf8Text(text: string): boolean {
  // [MQTT-1.5.3-2] no U+0000; lone surrogates cannot be encoded as UTF-8 [MQTT-1.5.3-1].
  if (text.includes('\u0000')) return false;
  if (!text.isWellFormed()) return false;
  return Buffer.byteLength(text, 'utf8') <= maxUtf8Bytes;
}

/**
 * A topic name a PUBLISH may carry: at least one character, no wildcards.
 *
 * @example
 * isValidTopicName('sensors/kitchen/temp'); // true
 * isValidTopicName('sensors/+/temp');       // false
 */
export function isValidTopicName(topic: string): boolean {
  // [MQTT-4.7.3-1] at least one character; [MQTT-3.3.2-2] no wildcard characters.
  return topic.length > 0 && !topic.includes('+') && !topic.includes('#') && isValidUtf8Text(topic);
}

/**
 * A topic filter a SUBSCRIBE may carry.
 *
 * @example
 * isValidTopicFilter('sport/+/player1'); // true
 * isValidTopicFilter('sport/tennis#');   // false
 */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || !isValidUtf8Text(filter)) return false; // [MQTT-4.7.3-1]
  const levels = filter.split('/');
  return levels.every((level, index) => {
    // [MQTT-4.7.1-2] '#' alone in its level and last; [MQTT-4.7.1-3] '+' alone in its level.
    if (level.includes('#')) return level === '#' && index === levels.length - 1;
    if (level.includes('+')) return level === '+';
    return true;
  });
}

/** The prefix of a Shared Subscription's filter (MQTT 5.0 §4.8.2). */
export const sharePrefix = '$share/';

/** A Shared Subscription's two parts: `$share/{shareName}/{topicFilter}`. */
export interface SharedFilter {
  readonly shareName: string;
  readonly topicFilter: string;
}

/**
 * Splits a Shared Subscription's filter: undefined for a filter that is not
 * one, 'malformed' for one without a valid ShareName or topic filter.
 *
 * @example
 * parseSharedFilter('$share/workers/jobs/+'); // { shareName: 'workers', topicFilter: 'jobs/+' }
 * parseSharedFilter('$share/a+b/jobs');      // 'malformed'
 * parseSharedFilter('jobs/+');               // undefined
 */
export function parseSharedFilter(filter: string): SharedFilter | 'malformed' | undefined {
  if (!filter.startsWith(sharePrefix)) return undefined;
  const rest = filter.slice(sharePrefix.length);
  const slash = rest.indexOf('/');
  // [MQTT-4.8.2-2] the ShareName is followed by '/' and a Topic Filter; it holds no '/' (the split), '+' or '#'.
  if (slash === -1) return 'malformed';
  const shareName = rest.slice(0, slash);
  const topicFilter = rest.slice(slash + 1);
  // [MQTT-4.8.2-1] a ShareName of at least one character.
  if (shareName.length === 0 || shareName.includes('+') || shareName.includes('#')) return 'malformed';
  if (!isValidTopicFilter(topicFilter)) return 'malformed';
  return { shareName, topicFilter };
}

/**
 * The filter topics are matched against: a Shared Subscription's topic
 * filter, or the filter itself. Subscriptions are stored, matched and
 * authorized by it.
 *
 * @example
 * matchingFilter('$share/workers/jobs/+'); // 'jobs/+'
 * matchingFilter('jobs/+');                // 'jobs/+'
 */
export function matchingFilter(filter: string): string {
  const shared = parseSharedFilter(filter);
  return typeof shared === 'object' ? shared.topicFilter : filter;
}

/**
 * Whether a topic name matches a topic filter, MQTT 3.1.1 §4.7.
 *
 * @example
 * topicMatches('sport/#', 'sport');          // true  (parent level)
 * topicMatches('+/monitor', '$SYS/monitor'); // false [MQTT-4.7.2-1]
 */
export function topicMatches(filter: string, topic: string): boolean {
  // [MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with '$'.
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true; // also matches the parent level: 'a/#' matches 'a'
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Encodes a list of literal levels as a partition key; the level count keeps '' and '/'-prefixed prefixes apart. */
function anchorKey(levels: readonly string[]): string {
  return `${levels.length}|${levels.join('/')}`;
}

/**
 * The partition under which a subscription is stored: its literal levels up
 * to the first wildcard. A filter without wildcards is its own anchor.
 *
 * @example
 * filterAnchor('home/+/temp'); // '1|home'
 * filterAnchor('#');           // '0|'
 */
export function filterAnchor(filter: string): string {
  const levels = filter.split('/');
  const firstWildcard = levels.findIndex((level) => level === '+' || level === '#');
  return anchorKey(firstWildcard === -1 ? levels : levels.slice(0, firstWildcard));
}

/**
 * Every anchor a filter matching `topic` can be stored under: one per prefix
 * of the topic, the empty prefix and the whole topic included. A publish reads
 * exactly these partitions, `levels + 1` of them, whatever the table holds.
 *
 * @example
 * topicAnchors('a/b'); // ['0|', '1|a', '2|a/b']
 */
export function topicAnchors(topic: string): string[] {
  const levels = topic.split('/');
  return Array.from({ length: levels.length + 1 }, (_, n) => anchorKey(levels.slice(0, n)));
}
