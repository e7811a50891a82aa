// The compose stack's users and ACL (examples/compose/hooks) load with the
// real parsers, and the demo accounts the docs promise work.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decide, loadAcl } from '../src/acl.js';
import { loadUsers, verifyPassword } from '../src/users.js';
import { topicReq } from './helpers.js';

const file = (/** @type {string} */ name) => fileURLToPath(new URL(`../../compose/hooks/${name}`, import.meta.url));

describe('examples/compose/hooks', () => {
  it('users.txt has the demo accounts alice / wonderland, bob / builder and carol / pencil (SCRAM)', async () => {
    const users = await loadUsers(file('users.txt'));
    assert.deepEqual([...users.keys()], ['alice', 'bob', 'carol']);
    for (const [name, password] of [['alice', 'wonderland'], ['bob', 'builder'], ['carol', 'pencil']]) {
      const hash = users.get(name);
      assert.ok(hash);
      assert.equal(await verifyPassword(hash, Buffer.from(password)), true, name);
      assert.equal(await verifyPassword(hash, Buffer.from(password + '!')), false, name);
    }
  });

  it('acl.json loads and means what the README says', async () => {
    const acl = await loadAcl(file('acl.json'));
    const d = (/** @type {Parameters<typeof topicReq>[0]} */ f) => decide(acl, topicReq(f)).result;
    assert.equal(d({ client_id: 's1', action: 'publish', topic: 'sensors/s1/temperature' }), 'allow');
    assert.equal(d({ client_id: 's1', action: 'publish', topic: 'sensors/s2/temperature' }), 'ignore');
    assert.equal(d({ action: 'subscribe', topic: 'sensors/#' }), 'allow');
    assert.equal(d({ username: 'bob', action: 'subscribe', topic: 'sensors/+/temperature' }), 'allow');
    assert.equal(d({ username: 'bob', action: 'receive', topic: 'sensors/lab/temperature' }), 'deny');
    assert.equal(d({ username: 'bob', action: 'publish', topic: 'users/bob/inbox' }), 'allow');
    assert.equal(d({ username: 'bob', action: 'publish', topic: 'users/alice/inbox' }), 'ignore');
    assert.equal(d({ username: 'carol', action: 'subscribe', topic: 'public/#' }), 'allow');
  });
});
