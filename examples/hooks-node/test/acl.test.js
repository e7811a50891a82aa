// POST /topic_filtering against a real server: every rule of the ACL file.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAcl, TOPIC_TTL } from '../src/acl.js';
import { startServer, topicReq } from './helpers.js';

const ACL = {
  all: [
    { topic: 'public/#', actions: ['subscribe', 'publish', 'receive'] },
    { topic: 'users/%u/#', actions: ['subscribe', 'publish', 'receive'] },
    { topic: 'devices/%c/status', actions: ['publish'] },
  ],
  anonymous: [{ topic: 'lobby/+', actions: ['subscribe', 'receive'] }],
  users: {
    alice: [
      { topic: 'sensors/#', actions: ['subscribe', 'receive'] },
      { topic: 'sensors/secret/#', actions: ['subscribe', 'receive'], result: 'deny' },
      { topic: 'sensors/+/temp', actions: ['publish'] },
    ],
    bob: [{ topic: 'sensors/+/temp', actions: ['subscribe'] }],
  },
};

/**
 * @param {Awaited<ReturnType<typeof startServer>>} srv
 * @param {Parameters<typeof topicReq>[0]} f
 */
async function ask(srv, f) {
  const res = await srv.post('/topic_filtering', topicReq(f));
  assert.equal(res.status, 200);
  return res.json();
}

describe('topic_filtering', async () => {
  const srv = await startServer({ state: { acl: parseAcl(JSON.stringify(ACL), 'acl.json') } });
  /** @type {[Parameters<typeof topicReq>[0], string][]} */
  const cases = [
    // per action: alice may publish on sensors/+/temp but not subscribe to it... she may, via sensors/#
    [{ action: 'publish', topic: 'sensors/kitchen/temp' }, 'allow'],
    [{ action: 'publish', topic: 'sensors/kitchen/humidity' }, 'ignore'],
    [{ action: 'subscribe', topic: 'sensors/+/temp' }, 'allow'],
    [{ action: 'receive', topic: 'sensors/kitchen/humidity' }, 'allow'],
    // a grant allows a subscription that can match one topic it allows: bob's
    // sensors/+/temp allows sensors/#, and each delivery is checked (receive)
    [{ username: 'bob', action: 'subscribe', topic: 'sensors/+/temp' }, 'allow'],
    [{ username: 'bob', action: 'subscribe', topic: 'sensors/kitchen/temp' }, 'allow'],
    [{ username: 'bob', action: 'subscribe', topic: 'sensors/#' }, 'allow'],
    [{ username: 'bob', action: 'subscribe', topic: 'sensors/+/humidity' }, 'ignore'],
    [{ username: 'bob', action: 'publish', topic: 'sensors/kitchen/temp' }, 'ignore'],
    [{ username: 'bob', action: 'receive', topic: 'sensors/kitchen/temp' }, 'ignore'],
    // a deny rule wins over an allow that also matches
    [{ action: 'subscribe', topic: 'sensors/secret/#' }, 'deny'],
    [{ action: 'receive', topic: 'sensors/secret/key' }, 'deny'],
    // ...but refuses a subscription only when it covers the whole filter: the rest is left to receive
    [{ action: 'subscribe', topic: 'sensors/#' }, 'allow'],
    // %u: each user has their own subtree
    [{ action: 'publish', topic: 'users/alice/notes' }, 'allow'],
    [{ action: 'publish', topic: 'users/bob/notes' }, 'ignore'],
    [{ username: 'bob', action: 'subscribe', topic: 'users/bob/#' }, 'allow'],
    // %c: the client id
    [{ client_id: 'dev-7', action: 'publish', topic: 'devices/dev-7/status' }, 'allow'],
    [{ client_id: 'dev-7', action: 'publish', topic: 'devices/dev-8/status' }, 'ignore'],
    // a client id or user name with /, + or # cannot widen a rule
    [{ client_id: 'x/y', action: 'publish', topic: 'devices/x/y/status' }, 'ignore'],
    [{ client_id: '+', action: 'publish', topic: 'devices/+/status' }, 'deny'], // wildcard in a topic name
    [{ username: '#', action: 'subscribe', topic: 'users/#' }, 'ignore'],
    // rules for everyone
    [{ username: 'carol', action: 'publish', topic: 'public/chat' }, 'allow'],
    [{ username: 'carol', action: 'subscribe', topic: 'sensors/#' }, 'ignore'],
    // anonymous: its own rules, and %u never applies
    [{ username: '', action: 'subscribe', topic: 'lobby/+' }, 'allow'],
    [{ username: '', action: 'subscribe', topic: 'lobby/#' }, 'allow'], // lobby/x/y fails the receive check
    [{ username: '', action: 'subscribe', topic: 'lobby/x/y' }, 'ignore'],
    [{ username: '', action: 'publish', topic: 'users//x' }, 'ignore'],
    [{ username: '', action: 'publish', topic: 'public/x' }, 'allow'],
    // shared subscriptions are checked on their filter
    [{ action: 'subscribe', topic: '$share/g/sensors/+/temp' }, 'allow'],
    [{ action: 'subscribe', topic: '$share/g/sensors/secret/x' }, 'deny'],
    // $ topics are not reached by a leading wildcard
    [{ username: 'carol', action: 'subscribe', topic: '$SYS/#' }, 'ignore'],
    // bad topics get a deny with a reason
    [{ action: 'publish', topic: 'sensors/+/temp' }, 'deny'],
    [{ action: 'publish', topic: '' }, 'deny'],
    [{ action: 'subscribe', topic: 'sensors/#/x' }, 'deny'],
  ];
  for (const [f, want] of cases) {
    it(`${f.username ?? 'alice'}${f.client_id ? `(${f.client_id})` : ''} ${f.action} ${f.topic} -> ${want}`, async () => {
      const d = await ask(srv, f);
      assert.equal(d.result, want, JSON.stringify(d));
      assert.equal(d.cache_ttl, TOPIC_TTL[/** @type {'allow'|'deny'|'ignore'} */ (want)]);
      if (want === 'deny') assert.ok(d.reason, 'a deny says why');
    });
  }

  it('"default": "deny" turns no-match into deny', async () => {
    const strict = await startServer({ state: { acl: parseAcl(JSON.stringify({ ...ACL, default: 'deny' }), 'acl.json') } });
    const d = await ask(strict, { username: 'bob', action: 'publish', topic: 'sensors/kitchen/temp' });
    assert.deepEqual(d, { result: 'deny', reason: 'publish sensors/kitchen/temp: no rule allows it', cache_ttl: TOPIC_TTL.deny });
    assert.equal((await ask(strict, { action: 'publish', topic: 'public/x' })).result, 'allow');
  });

  it('bad requests -> 400 naming the field', async () => {
    for (const [body, msg] of /** @type {[unknown, RegExp][]} */ ([
      [{ ...topicReq({}), action: 'read' }, /action: "read" is not one of subscribe, publish, receive/],
      [{ ...topicReq({}), topic: 7 }, /topic: want a string/],
      [{ ...topicReq({}), username: null }, /username: want a string/],
      [[1, 2], /body must be a JSON object/],
    ])) {
      const res = await srv.post('/topic_filtering', body);
      assert.equal(res.status, 400);
      assert.match((await res.json()).error, msg);
    }
  });
});

describe('parseAcl', () => {
  const bad = [
    ['{', /acl.json: not valid JSON/],
    ['[]', /want a JSON object/],
    ['{"user": {}}', /unknown key "user"/],
    ['{"default": "allow"}', /default: "allow" is not ignore or deny/],
    ['{"users": []}', /users: want an object/],
    ['{"all": {}}', /all: want a list of rules/],
    ['{"all": [{"topic": "a"}]}', /all\[0\]\.actions: want a non-empty list/],
    ['{"all": [{"topic": "a", "actions": ["pub"]}]}', /all\[0\]\.actions: "pub" is not an action/],
    ['{"all": [{"topic": "a/#/b", "actions": ["publish"]}]}', /all\[0\]\.topic: "a\/#\/b" "#" must be/],
    ['{"users": {"al": [{"topic": "a", "actions": ["publish"], "result": "maybe"}]}}', /users\.al\[0\]\.result/],
    ['{"users": {"al": [{"topic": "a", "actions": ["publish"], "qos": 1}]}}', /users\.al\[0\]: unknown key "qos"/],
  ];
  for (const [text, msg] of bad) {
    it(`refuses ${text}`, () => assert.throws(() => parseAcl(/** @type {string} */ (text), 'acl.json'), msg));
  }
  it('reads a valid file with defaults', () => {
    const acl = parseAcl('{"users": {"a": [{"topic": "x", "actions": ["receive"]}]}}', 'acl.json');
    assert.equal(acl.default, 'ignore');
    assert.deepEqual(acl.users.get('a'), [{ topic: 'x', actions: ['receive'], result: 'allow', where: 'users.a[0]' }]);
  });
});
