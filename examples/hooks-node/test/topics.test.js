// Topic matching tables: filter vs name (publish, receive), filter covers
// filter (a deny refuses a subscription) and filter overlaps filter (a grant
// allows one). test/cases.test.js checks both against brute force.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { covers, filterProblem, matches, overlaps, stripShare } from '../src/topics.js';

describe('matches', () => {
  const table = [
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/b', 'a/b/c', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a', false],
    ['a/+', 'a/b/c', false],
    ['a/+/c', 'a/x/c', true],
    ['+/+', '/x', true], // an empty level is a level
    ['a/#', 'a', true], // "#" includes the parent level
    ['a/#', 'a/b/c', true],
    ['a/#', 'ab', false],
    ['#', 'anything/at/all', true],
    ['#', '$SYS/broker/uptime', false], // [MQTT-4.7.2-1]
    ['+/broker', '$SYS/broker', false],
    ['$SYS/#', '$SYS/broker', true],
  ];
  for (const [filter, name, want] of table) {
    it(`${filter} ${want ? 'matches' : 'does not match'} ${name}`, () => assert.equal(matches(/** @type {string} */ (filter), /** @type {string} */ (name)), want));
  }
});

describe('covers (rule filter vs subscription filter)', () => {
  const table = [
    ['sensors/#', 'sensors/+/temp', true],
    ['sensors/+/temp', 'sensors/#', false], // the reverse would leak sensors/secret
    ['sensors/#', 'sensors/#', true],
    ['sensors/#', 'sensors', true],
    ['sensors/#', '#', false],
    ['#', '#', true],
    ['#', '+/x/#', true],
    ['+', '+', true],
    ['+', '#', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/b', 'a/+', false],
    ['a/b', 'a/b', true],
    ['a', 'a/#', false], // a/# also matches a/b
    ['a/+', 'a', false],
    ['a/+/c', 'a/+/c', true],
    ['a/+/c', 'a/+/+', false],
    ['#', '$SYS/#', false],
    ['$SYS/#', '$SYS/broker/+', true],
    ['+/#', '#', true], // both match every topic of one level or more
    ['a/+/#', 'a/#', false], // a/# also matches a
  ];
  for (const [rule, sub, want] of table) {
    it(`${rule} ${want ? 'covers' : 'does not cover'} ${sub}`, () => assert.equal(covers(/** @type {string} */ (rule), /** @type {string} */ (sub)), want));
  }
});

describe('overlaps (rule filter vs subscription filter)', () => {
  const table = [
    ['sensors/+/temp', 'sensors/#', true],
    ['sensors/secret/#', 'sensors/#', true],
    ['sensors/+/temp', 'sensors/+/humidity', false],
    ['a/#', 'a', true],
    ['a', 'a/#', true],
    ['a/+', 'a', false],
    ['a/b', 'a/b/c', false],
    ['+/b', 'a/+', true],
    ['#', '$SYS/#', false],
    ['$SYS/#', '+/broker', false],
    ['$SYS/+', '$SYS/#', true],
  ];
  for (const [rule, sub, want] of table) {
    it(`${rule} ${want ? 'overlaps' : 'does not overlap'} ${sub}`, () => assert.equal(overlaps(/** @type {string} */ (rule), /** @type {string} */ (sub)), want));
  }
});

describe('filterProblem', () => {
  it('accepts valid filters', () => {
    for (const f of ['a', 'a/b', '+', '#', 'a/+/b', 'a/#', '/', '+/+']) assert.equal(filterProblem(f), '', f);
  });
  it('names the problem of invalid ones', () => {
    assert.equal(filterProblem(''), 'is empty');
    assert.match(filterProblem('a/#/b'), /"#" must be the whole last level/);
    assert.match(filterProblem('a#'), /"#"/);
    assert.match(filterProblem('a/b+'), /"\+" must be a whole level/);
  });
});

describe('stripShare', () => {
  it('drops $share/{group}/', () => {
    assert.equal(stripShare('$share/g1/sensors/#'), 'sensors/#');
    assert.equal(stripShare('sensors/#'), 'sensors/#');
    assert.equal(stripShare('$share/g1'), '$share/g1'); // malformed: left for the filter check
  });
});
