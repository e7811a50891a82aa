// The ACL rule shared with mqttd's built-in acl-file plugin: both test suites
// read internal/hooks/aclfile/testdata/acl-cases.json, so the two
// implementations cannot drift apart. Also an exhaustive small-scope check of
// covers and overlaps against brute force.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { decide, parseAcl } from '../src/acl.js';
import { covers, filterProblem, matches, overlaps } from '../src/topics.js';

/**
 * @typedef {{user?: string, anonymous?: boolean, topic: string, actions: string[], result?: string}} CaseRule
 * @typedef {{user: string, client?: string, action: string, topic: string, want: string, why?: string}} Check
 * @typedef {{filters: {rule: string, sub: string, covers: boolean, overlaps: boolean}[],
 *   policies: {name: string, rules: CaseRule[], checks: Check[]}[]}} Cases
 */

const file = new URL('../../../internal/hooks/aclfile/testdata/acl-cases.json', import.meta.url);
/** @type {Cases} */
const cases = JSON.parse(await readFile(file, 'utf8'));

/**
 * The case file's rules as this service's ACL file.
 * @param {CaseRule[]} rules
 */
function aclOf(rules) {
  /** @type {{all: object[], anonymous: object[], users: Record<string, object[]>}} */
  const acl = { all: [], anonymous: [], users: {} };
  for (const { user, anonymous, ...rule } of rules) {
    if (anonymous) acl.anonymous.push(rule);
    else if (user !== undefined) (acl.users[user] ??= []).push(rule);
    else acl.all.push(rule);
  }
  return parseAcl(JSON.stringify(acl), 'acl-cases.json');
}

describe('shared filter cases', () => {
  assert.ok(cases.filters.length > 0);
  for (const f of cases.filters) {
    it(`${f.rule} vs ${f.sub}: covers ${f.covers}, overlaps ${f.overlaps}`, () => {
      assert.equal(covers(f.rule, f.sub), f.covers);
      assert.equal(overlaps(f.rule, f.sub), f.overlaps);
    });
  }
});

describe('shared policy cases', () => {
  assert.ok(cases.policies.length > 0);
  for (const p of cases.policies) {
    it(p.name, () => {
      const acl = aclOf(p.rules);
      for (const c of p.checks) {
        const req = /** @type {Parameters<typeof decide>[1]} */ ({
          client_id: c.client ?? 'c', username: c.user, topic: c.topic, action: c.action, qos: 0, retain: false,
        });
        const d = decide(acl, req);
        assert.equal(d.result, c.want, `user ${JSON.stringify(c.user)} client ${req.client_id} ${c.action} ${c.topic}${c.why ? ` (${c.why})` : ''}: ${JSON.stringify(d)}`);
      }
    });
  }
});

describe('covers and overlaps against brute force', () => {
  // Every valid filter of up to three levels over a, "", +, # and $s (first
  // level only), against every topic of up to four levels over a, z, "" and
  // $s: the literals the filters use, one they do not, and a $ level.
  const levels = ['a', '', '+', '#', '$s'];
  /** @type {string[]} */
  const filters = [];
  /** @type {string[]} */
  const topics = [];
  /** @param {string[]} ls @param {number} n @param {string[]} out @param {string[]} prefix */
  const gen = (ls, n, out, prefix) => {
    if (prefix.length > 0) out.push(prefix.join('/'));
    if (prefix.length === n) return;
    for (const l of ls) if (l !== '$s' || prefix.length === 0) gen(ls, n, out, [...prefix, l]);
  };
  gen(levels, 3, filters, []);
  gen(['a', 'z', '', '$s'], 4, topics, []);
  const valid = filters.filter((f) => filterProblem(f) === '');
  const sets = new Map(valid.map((f) => [f, topics.filter((t) => matches(f, t))]));
  it(`${valid.length}² pairs`, () => {
    assert.ok(valid.length > 50 && topics.length > 100);
    for (const [rule, inRule] of sets) {
      const ruleSet = new Set(inRule);
      for (const [sub, inSub] of sets) {
        const wantC = inSub.every((t) => ruleSet.has(t));
        const wantO = inSub.some((t) => ruleSet.has(t));
        if (covers(rule, sub) !== wantC || overlaps(rule, sub) !== wantO) {
          assert.fail(`${rule} vs ${sub}: covers ${covers(rule, sub)} (want ${wantC}), overlaps ${overlaps(rule, sub)} (want ${wantO})`);
        }
      }
    }
  });
});
