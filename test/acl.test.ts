import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { aclAllows, aclAllowsSubscribe, filterCovers, parseAcl } from '../shared/acl.js';

const file = `# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic read shared/#
topic deny shared/secret/#

user bob
topic bob/#
topic write inbox/+

# every client
pattern readwrite devices/%c/#
pattern read users/%u/#
`;
const acl = parseAcl(file);
const alice = { user: 'alice', clientId: 'a1' };
const bob = { user: 'bob', clientId: 'b1' };
const anonymous = { clientId: 'x1' };

describe('parseAcl', () => {
  test('topic lines before the first user line are the anonymous block; user blocks follow', () => {
    assert.deepEqual(acl.anonymous, [{ access: 'read', filter: 'public/#', line: 2 }]);
    assert.deepEqual(
      acl.users.get('alice')?.map((r) => [r.access, r.filter]),
      [
        ['readwrite', 'alice/#'],
        ['read', 'shared/#'],
        ['deny', 'shared/secret/#'],
      ],
    );
  });

  test('no access word means readwrite; pattern lines collect wherever they stand', () => {
    assert.equal(acl.users.get('bob')?.[0]?.access, 'readwrite');
    assert.deepEqual(
      acl.patterns.map((r) => r.filter),
      ['devices/%c/#', 'users/%u/#'],
    );
  });

  test('a topic containing a space keeps it when an access word precedes it', () => {
    assert.equal(parseAcl('topic read a b/c').anonymous[0]?.filter, 'a b/c');
  });

  test('mistakes are refused with their line number', () => {
    assert.throws(() => parseAcl('user alice\nallow alice/#'), /line 2: unknown keyword "allow"/);
    assert.throws(() => parseAcl('topic read a/#/b'), /line 1: .*not a valid topic filter/);
    assert.throws(() => parseAcl('topic'), /line 1: "topic" needs a topic filter/);
    assert.throws(() => parseAcl('user'), /line 1: "user" needs a user name/);
  });
});

describe('aclAllows (publish and delivery)', () => {
  test('a client may do only what a line grants it: nothing is allowed unless granted', () => {
    assert.equal(aclAllows(acl, alice, 'write', 'alice/x'), true);
    assert.equal(aclAllows(acl, alice, 'write', 'bob/x'), false);
    assert.equal(aclAllows(acl, alice, 'read', 'shared/news'), true);
    assert.equal(aclAllows(acl, alice, 'write', 'shared/news'), false, 'read only');
    assert.equal(aclAllows(acl, bob, 'read', 'inbox/bob'), false, 'write only');
    assert.equal(aclAllows(acl, bob, 'write', 'inbox/bob'), true);
  });

  test('deny wins over a broader grant', () => {
    assert.equal(aclAllows(acl, alice, 'read', 'shared/secret/plans'), false);
    assert.equal(aclAllows(acl, alice, 'read', 'shared/secret'), false, "'a/#' matches its parent level");
  });

  test('anonymous clients get the lines before the first user, and patterns without %u', () => {
    assert.equal(aclAllows(acl, anonymous, 'read', 'public/x'), true);
    assert.equal(aclAllows(acl, anonymous, 'write', 'public/x'), false);
    assert.equal(aclAllows(acl, anonymous, 'read', 'devices/x1/state'), true);
    assert.equal(aclAllows(acl, anonymous, 'read', 'users/undefined/x'), false);
    assert.equal(aclAllows(acl, alice, 'read', 'public/x'), false, 'users do not get the anonymous block');
  });

  test('%c and %u are replaced by the client id and the user name', () => {
    assert.equal(aclAllows(acl, alice, 'write', 'devices/a1/state'), true);
    assert.equal(aclAllows(acl, alice, 'write', 'devices/b1/state'), false);
    assert.equal(aclAllows(acl, bob, 'read', 'users/bob/inbox'), true);
    assert.equal(aclAllows(acl, bob, 'read', 'users/alice/inbox'), false);
  });

  test('a client id or user name with a wildcard or a slash does not widen a pattern', () => {
    for (const clientId of ['#', '+', 'a/b', 'x/#']) {
      assert.equal(
        aclAllows(acl, { user: 'alice', clientId }, 'write', 'devices/a/b/state'),
        false,
        clientId,
      );
    }
    assert.equal(aclAllows(acl, { user: '#', clientId: 'c' }, 'read', 'users/alice/inbox'), false);
  });

  test('[MQTT-4.7.2-1] a # grant does not reach $ topics; an explicit $SYS grant does', () => {
    const open = parseAcl('user root\ntopic #\nuser ops\ntopic read $SYS/#');
    assert.equal(aclAllows(open, { user: 'root', clientId: 'r' }, 'read', '$SYS/broker/load'), false);
    assert.equal(aclAllows(open, { user: 'ops', clientId: 'o' }, 'read', '$SYS/broker/load'), true);
  });

  test('a user the file does not name gets only the patterns', () => {
    assert.equal(aclAllows(acl, { user: 'mallory', clientId: 'm' }, 'write', 'alice/x'), false);
    assert.equal(aclAllows(acl, { user: 'mallory', clientId: 'm' }, 'write', 'devices/m/x'), true);
  });
});

describe('aclAllowsSubscribe', () => {
  test('a filter is granted when a read grant covers all of it', () => {
    assert.equal(aclAllowsSubscribe(acl, alice, 'alice/#'), true);
    assert.equal(aclAllowsSubscribe(acl, alice, 'alice/+/temp'), true);
    assert.equal(aclAllowsSubscribe(acl, alice, 'shared/news'), true);
  });

  test('# is refused to a user granted only a/# (it reaches topics beyond the grant)', () => {
    assert.equal(aclAllowsSubscribe(acl, alice, '#'), false);
    assert.equal(aclAllowsSubscribe(acl, alice, '+/x'), false);
    assert.equal(aclAllowsSubscribe(acl, bob, 'inbox/+'), false, 'write-only grants do not allow reading');
  });

  test('a filter a deny covers is refused; one with a denied part inside stays allowed (delivery filters it)', () => {
    assert.equal(aclAllowsSubscribe(acl, alice, 'shared/secret/#'), false);
    assert.equal(aclAllowsSubscribe(acl, alice, 'shared/#'), true);
  });
});

describe('filterCovers', () => {
  test('wildcards in the outer filter cover literals and narrower wildcards', () => {
    assert.equal(filterCovers('#', 'a/#'), true);
    assert.equal(filterCovers('a/#', 'a'), true);
    assert.equal(filterCovers('a/#', 'a/+/c'), true);
    assert.equal(filterCovers('a/+', 'a/b'), true);
    assert.equal(filterCovers('a/+', 'a/+'), true);
  });

  test('a wider inner filter is not covered', () => {
    assert.equal(filterCovers('a/#', '#'), false);
    assert.equal(filterCovers('a/+', 'a/#'), false);
    assert.equal(filterCovers('a/b', 'a/+'), false);
    assert.equal(filterCovers('a', 'a/#'), false);
    assert.equal(filterCovers('a/+', 'a'), false);
    assert.equal(filterCovers('#', '$SYS/#'), false);
  });
});
