// Grants and attributes with the login: the users file's third field, and
// the authenticate answer that carries it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUTH_TTL } from '../src/authenticate.js';
import { hashPassword, parseLogin, parseUsers, upsertUser } from '../src/users.js';
import { authReq, startServer } from './helpers.js';

const FAST = { ln: 10, r: 8, p: 1 };
const login = {
  acl: [
    { topic: 'devices/%u/secret', actions: ['receive'], result: 'deny' },
    { topic: 'devices/%u/#', actions: ['publish', 'subscribe', 'receive'], result: 'allow' },
  ],
  attributes: { tenant: 'acme', role: 'sensor' },
};

describe('login: acl and attributes', async () => {
  const text = [
    `alice:${await hashPassword(Buffer.from('wonderland'), FAST)}:${JSON.stringify(login)}`,
    `bob:${await hashPassword(Buffer.from('b0b'), FAST)}`,
    '',
  ].join('\n');
  const srv = await startServer({ state: { users: parseUsers(text, 'users.txt') } });

  it('an allow carries the user\'s acl and attributes', async () => {
    const res = await srv.post('/authenticate', authReq({ username: 'alice', password: 'wonderland' }));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { result: 'allow', cache_ttl: AUTH_TTL.allow, ...login });
  });

  it('a user without a login field gets the first-edition answer', async () => {
    const res = await srv.post('/authenticate', authReq({ username: 'bob', password: 'b0b' }));
    assert.deepEqual(await res.json(), { result: 'allow', cache_ttl: AUTH_TTL.allow });
  });

  it('a deny never carries them', async () => {
    const res = await srv.post('/authenticate', authReq({ username: 'alice', password: 'wrong' }));
    const d = await res.json();
    assert.equal(d.result, 'deny');
    assert.equal(d.acl, undefined);
    assert.equal(d.attributes, undefined);
  });

  it('parseLogin names what is wrong', () => {
    assert.deepEqual(parseLogin(JSON.stringify(login)), login);
    assert.match(/** @type {string} */ (parseLogin('{')), /not JSON/);
    assert.match(/** @type {string} */ (parseLogin('[]')), /not a JSON object/);
    assert.match(/** @type {string} */ (parseLogin('{"grants":[]}')), /unknown key/);
    assert.match(/** @type {string} */ (parseLogin('{"acl":[{"topic":"a","actions":["write"],"result":"allow"}]}')), /acl\[0\]/);
    assert.match(/** @type {string} */ (parseLogin('{"attributes":{"n":1}}')), /not a string/);
    assert.throws(() => parseUsers('alice:$scrypt$ln=10,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA:{"acl":1}', 'u'), /u:1: the login field acl is not a list/);
  });

  it('add-user keeps the login field', () => {
    const t = 'alice:$old:{"attributes":{"a":"b"}}\n';
    assert.equal(upsertUser(t, 'alice', '$new'), 'alice:$new:{"attributes":{"a":"b"}}\n');
  });

});
