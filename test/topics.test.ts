import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  filterAnchor,
  isValidTopicFilter,
  isValidTopicName,
  topicAnchors,
  topicMatches,
} from '../shared/topics.js';

// MQTT 3.1.1 §4.7: topic names, topic filters, wildcards; and the anchors
// under which subscriptions are stored (docs/adr/0002-subscription-keys.md).

describe('topic filter validity', () => {
  test('[MQTT-4.7.1-2] the multi-level wildcard stands alone in the last level', () => {
    for (const filter of ['sport/tennis/player1/#', 'sport/#', '#', '/#', '+/#', 'sport/+/#']) {
      assert.equal(isValidTopicFilter(filter), true, filter);
    }
    for (const filter of ['sport/tennis#', 'sport/tennis/#/ranking', '#/', '#/a', 'a/#b', 'a/##']) {
      assert.equal(isValidTopicFilter(filter), false, filter);
    }
  });

  test('[MQTT-4.7.1-3] the single-level wildcard occupies an entire level', () => {
    for (const filter of ['+', 'sport/+', '+/tennis/#', '+/+', '/+', 'sport/+/player1', '+/']) {
      assert.equal(isValidTopicFilter(filter), true, filter);
    }
    for (const filter of ['sport+', '+sport', 'sport/+tennis', 'a/++', '+a/b']) {
      assert.equal(isValidTopicFilter(filter), false, filter);
    }
  });

  test('[MQTT-4.7.3-1] a filter has at least one character; empty levels are allowed', () => {
    assert.equal(isValidTopicFilter(''), false);
    for (const filter of ['/', '//', 'a//b', '/finance', 'finance/']) {
      assert.equal(isValidTopicFilter(filter), true, filter);
    }
  });

  test('[MQTT-1.5.3-2] a filter holding U+0000 is invalid', () => {
    assert.equal(isValidTopicFilter('a\u0000b'), false);
    assert.equal(isValidTopicFilter('\u0000'), false);
  });

  test('[MQTT-1.5.3-1] a filter holding a lone surrogate is not well-formed UTF-8', () => {
    assert.equal(isValidTopicFilter('a/\ud800'), false);
    assert.equal(isValidTopicFilter('a/\u{1F600}'), true);
  });

  test('[MQTT-1.5.3-1] a filter of more than 65,535 UTF-8 bytes is invalid', () => {
    assert.equal(isValidTopicFilter('a'.repeat(65_535)), true);
    assert.equal(isValidTopicFilter('a'.repeat(65_536)), false);
    assert.equal(isValidTopicFilter('é'.repeat(32_768)), false, '65,536 bytes in 32,768 characters');
  });
});

describe('topic name validity', () => {
  test('[MQTT-3.3.2-2] a topic name holds no wildcard characters', () => {
    for (const topic of ['sport/tennis/player1', '/', 'a//b', '$SYS/monitor', 'finance']) {
      assert.equal(isValidTopicName(topic), true, topic);
    }
    for (const topic of ['sport/+', 'sport/#', '+', '#', 'sport+', 'a#b']) {
      assert.equal(isValidTopicName(topic), false, topic);
    }
  });

  test('[MQTT-4.7.3-1] a topic name has at least one character', () => {
    assert.equal(isValidTopicName(''), false);
  });

  test('[MQTT-1.5.3-2] a topic name holding U+0000 is invalid', () => {
    assert.equal(isValidTopicName('sport\u0000tennis'), false);
  });
});

describe('topic matching, MQTT 3.1.1 §4.7.1 examples', () => {
  test('[MQTT-4.7.1-2] "sport/tennis/player1/#" matches the parent and every level below', () => {
    const filter = 'sport/tennis/player1/#';
    for (const topic of [
      'sport/tennis/player1',
      'sport/tennis/player1/ranking',
      'sport/tennis/player1/score/wimbledon',
    ]) {
      assert.equal(topicMatches(filter, topic), true, topic);
    }
    for (const topic of ['sport/tennis', 'sport/tennis/player2', 'sport/tennis/player10']) {
      assert.equal(topicMatches(filter, topic), false, topic);
    }
  });

  test('[MQTT-4.7.1-2] "sport/#" also matches "sport"; "#" matches every non-$ topic', () => {
    assert.equal(topicMatches('sport/#', 'sport'), true);
    assert.equal(topicMatches('sport/#', 'sports'), false);
    for (const topic of ['a', '/', 'a/b/c', '/finance']) assert.equal(topicMatches('#', topic), true, topic);
  });

  test('[MQTT-4.7.1-3] "sport/tennis/+" matches one level only', () => {
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis/player1'), true);
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis/player2'), true);
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis/player1/ranking'), false);
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis'), false);
  });

  test('[MQTT-4.7.1-3] "sport/+" does not match "sport" but matches "sport/"', () => {
    assert.equal(topicMatches('sport/+', 'sport'), false);
    assert.equal(topicMatches('sport/+', 'sport/'), true);
  });

  test('[MQTT-4.7.1-3] "+/+" and "/+" match "/"; "+" does not', () => {
    assert.equal(topicMatches('+/+', '/'), true);
    assert.equal(topicMatches('/+', '/'), true);
    assert.equal(topicMatches('+', '/'), false);
    assert.equal(topicMatches('/+', '/finance'), true);
    assert.equal(topicMatches('+', '/finance'), false);
    assert.equal(topicMatches('+/+', '/finance'), true);
  });

  test('[MQTT-4.7.3-1] empty levels are distinct levels', () => {
    assert.equal(topicMatches('a//b', 'a//b'), true);
    assert.equal(topicMatches('a/b', 'a//b'), false);
    assert.equal(topicMatches('a/+/b', 'a//b'), true);
    assert.equal(topicMatches('finance', '/finance'), false);
    assert.equal(topicMatches('finance/', 'finance'), false);
  });

  test('[MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with $', () => {
    assert.equal(topicMatches('#', '$SYS'), false);
    assert.equal(topicMatches('#', '$SYS/monitor/Clients'), false);
    assert.equal(topicMatches('+/monitor/Clients', '$SYS/monitor/Clients'), false);
    assert.equal(topicMatches('+', '$SYS'), false);
    assert.equal(topicMatches('$SYS/#', '$SYS/monitor/Clients'), true);
    assert.equal(topicMatches('$SYS/monitor/+', '$SYS/monitor/Clients'), true);
    assert.equal(topicMatches('$SYS/#', '$SYS'), true);
    // Only the first level counts: a later '$' level is ordinary.
    assert.equal(topicMatches('a/+', 'a/$x'), true);
    assert.equal(topicMatches('#', 'a/$x'), true);
  });

  test('topic matching is case sensitive and exact', () => {
    assert.equal(topicMatches('ACCOUNTS', 'Accounts'), false);
    assert.equal(topicMatches('Accounts payable', 'Accounts payable'), true);
  });
});

describe('subscription anchors', () => {
  test('a filter is anchored at its literal levels up to the first wildcard', () => {
    assert.equal(filterAnchor('home/+/temp'), '1|home');
    assert.equal(filterAnchor('#'), '0|');
    assert.equal(filterAnchor('+'), '0|');
    assert.equal(filterAnchor('a/b'), '2|a/b');
    assert.equal(filterAnchor('a/b/#'), '2|a/b');
    // An empty first level and no level at all are different anchors.
    assert.equal(filterAnchor('/+'), '1|');
    assert.notEqual(filterAnchor('/+'), filterAnchor('+'));
  });

  test('a topic reads one anchor per prefix, the empty prefix and the whole topic included', () => {
    assert.deepEqual(topicAnchors('a/b'), ['0|', '1|a', '2|a/b']);
    assert.deepEqual(topicAnchors('/'), ['0|', '1|', '2|/']);
    assert.deepEqual(topicAnchors('a'), ['0|', '1|a']);
  });
});

// Generators over a small alphabet of levels, so that matches are frequent.
const literalLevel = fc.constantFrom('a', 'b', '', '$x');
const topicArb = fc
  .array(literalLevel, { minLength: 1, maxLength: 5 })
  .map((levels) => levels.join('/'))
  .filter((topic) => topic.length > 0); // [MQTT-4.7.3-1]
const filterArb = fc
  .tuple(fc.array(fc.oneof(literalLevel, fc.constant('+')), { minLength: 0, maxLength: 5 }), fc.boolean())
  .filter(([levels, hash]) => levels.length > 0 || hash)
  .map(([levels, hash]) => [...levels, ...(hash ? ['#'] : [])].join('/'))
  .filter((filter) => filter.length > 0);

/** An independent reading of §4.7: recursion over the levels of filter and topic. */
function referenceMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (t[0].startsWith('$') && (f[0] === '+' || f[0] === '#')) return false; // [MQTT-4.7.2-1]
  const go = (fi: number, ti: number): boolean => {
    if (fi === f.length) return ti === t.length;
    if (f[fi] === '#') return true; // the parent level and any number of levels below
    if (ti === t.length) return false;
    if (f[fi] === '+') return go(fi + 1, ti + 1);
    return f[fi] === t[ti] && go(fi + 1, ti + 1);
  };
  return go(0, 0);
}

describe('properties', () => {
  test('the generators produce valid filters and topic names', () => {
    fc.assert(
      fc.property(filterArb, topicArb, (filter, topic) => {
        assert.equal(isValidTopicFilter(filter), true, filter);
        assert.equal(isValidTopicName(topic), true, topic);
      }),
    );
  });

  test('every filter matching a topic is stored under one of the anchors the topic reads', () => {
    let matched = 0;
    fc.assert(
      fc.property(filterArb, topicArb, (filter, topic) => {
        if (!topicMatches(filter, topic)) return;
        matched++;
        assert.ok(
          topicAnchors(topic).includes(filterAnchor(filter)),
          `${filter} matches ${topic} but ${filterAnchor(filter)} is not in ${topicAnchors(topic)}`,
        );
      }),
      { numRuns: 5000 },
    );
    assert.ok(matched > 200, `only ${matched} matching pairs were generated`);
  });

  test('a filter built from a topic matches it and so is found under its anchors', () => {
    // Turns some levels of a topic into '+', and maybe a tail into '#': always a match
    // (unless the [MQTT-4.7.2-1] $ rule applies), so the anchor invariant is exercised on every run.
    fc.assert(
      fc.property(
        fc.array(fc.tuple(literalLevel, fc.boolean()), { minLength: 1, maxLength: 6 }),
        fc.nat(6),
        (levels, cut) => {
          const topic = levels.map(([level]) => level).join('/');
          if (topic.length === 0) return;
          const kept = levels.slice(0, Math.min(cut, levels.length));
          const filterLevels = kept.map(([level, wild]) => (wild ? '+' : level));
          const filter =
            cut < levels.length ? [...filterLevels, '#'].join('/') : filterLevels.join('/') || '#';
          const dollarRule = topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'));
          assert.equal(topicMatches(filter, topic), !dollarRule, `${filter} vs ${topic}`);
          if (!dollarRule) assert.ok(topicAnchors(topic).includes(filterAnchor(filter)));
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('a topic reads exactly levels + 1 distinct anchors', () => {
    fc.assert(
      fc.property(
        fc.oneof(topicArb, fc.string({ minLength: 1, unit: fc.constantFrom('a', '/', '|', '1', '$') })),
        (topic) => {
          const anchors = topicAnchors(topic);
          assert.equal(anchors.length, topic.split('/').length + 1);
          assert.equal(new Set(anchors).size, anchors.length);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('topicMatches agrees with a reference matcher written from §4.7', () => {
    fc.assert(
      fc.property(filterArb, topicArb, (filter, topic) => {
        assert.equal(topicMatches(filter, topic), referenceMatches(filter, topic), `${filter} vs ${topic}`);
      }),
      { numRuns: 5000 },
    );
  });

  test('a filter without wildcards matches exactly the equal topic and is its own anchor', () => {
    fc.assert(
      fc.property(topicArb, topicArb, (a, b) => {
        assert.equal(topicMatches(a, b), a === b);
        assert.equal(filterAnchor(a), topicAnchors(a).at(-1));
      }),
    );
  });
});
