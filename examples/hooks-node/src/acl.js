// The ACL file (JSON):
//
//   {
//     "default": "ignore",                  // no rule matched: "ignore" (default) or "deny"
//     "all":       [ rule, ... ],           // apply to every client
//     "anonymous": [ rule, ... ],           // apply to clients without a user name
//     "users": { "alice": [ rule, ... ] }   // apply to one user name
//   }
//   rule = {"topic": "sensors/%c/#", "actions": ["publish"], "result": "allow"}
//
// topic is an MQTT filter (+, #); %u is replaced by the user name and %c by
// the client id. A rule with %u does not apply to an anonymous client. A value
// that is not one plain level (it contains "/", "+" or "#", or starts with "$")
// never lets a grant match, and makes a deny match everything: a client cannot
// widen its access by picking its id. actions: subscribe, publish, receive.
// result: allow (default) or deny. A matching deny wins over any allow.
//
// publish and receive match the topic name. A subscription is refused only by
// a deny that covers the whole filter, and allowed by a grant that allows at
// least one topic the filter can match (see topics.js); a deny on part of the
// filter is left to the receive check, which the broker runs per delivered
// message. A deny for subscribe alone therefore filters no delivery: deny
// receive too to keep messages from a client. acl-file, mqttd's built-in ACL,
// follows the same rule; both are tested against
// internal/hooks/aclfile/testdata/acl-cases.json.
//
// "default": "ignore" lets other plugins and the broker's topic-check.default
// (deny unless configured) decide; "deny" closes the door here.
import { readFile } from 'node:fs/promises';
import { HttpError } from './http.js';
import { covers, filterProblem, hasWildcard, matches, overlaps, stripShare } from './topics.js';

/**
 * @typedef {import('./api.js').components['schemas']['TopicFilteringRequest']} TopicFilteringRequest
 * @typedef {import('./api.js').components['schemas']['Decision']} Decision
 * @typedef {TopicFilteringRequest['action']} Action
 * @typedef {{topic: string, actions: Action[], result: 'allow' | 'deny', where: string}} Rule
 * @typedef {{default: 'ignore' | 'deny', all: Rule[], anonymous: Rule[], users: Map<string, Rule[]>}} Acl
 */

export const ACTIONS = /** @type {const} */ (['subscribe', 'publish', 'receive']);
const RULE_KEYS = ['topic', 'actions', 'result'];

export class AclFileError extends Error {}

/** An ACL that matches nothing: what runs without ACL_FILE. @returns {Acl} */
export function emptyAcl() {
  return { default: 'ignore', all: [], anonymous: [], users: new Map() };
}

/**
 * @param {unknown} v
 * @returns {v is Record<string, unknown>}
 */
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * @param {unknown} list
 * @param {string} where e.g. users.alice
 * @returns {Rule[]}
 */
function parseRules(list, where) {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new AclFileError(`${where}: want a list of rules`);
  return list.map((r, i) => {
    const at = `${where}[${i}]`;
    if (!isObject(r)) throw new AclFileError(`${at}: want {"topic": ..., "actions": [...]}`);
    for (const k of Object.keys(r)) {
      if (!RULE_KEYS.includes(k)) throw new AclFileError(`${at}: unknown key ${JSON.stringify(k)} (keys: ${RULE_KEYS.join(', ')})`);
    }
    if (typeof r.topic !== 'string') throw new AclFileError(`${at}.topic: want a topic filter string`);
    const problem = filterProblem(r.topic);
    if (problem) throw new AclFileError(`${at}.topic: ${JSON.stringify(r.topic)} ${problem}`);
    if (!Array.isArray(r.actions) || r.actions.length === 0) {
      throw new AclFileError(`${at}.actions: want a non-empty list of ${ACTIONS.join(', ')}`);
    }
    for (const a of r.actions) {
      if (!ACTIONS.includes(a)) throw new AclFileError(`${at}.actions: ${JSON.stringify(a)} is not an action (use ${ACTIONS.join(', ')})`);
    }
    const result = r.result ?? 'allow';
    if (result !== 'allow' && result !== 'deny') throw new AclFileError(`${at}.result: ${JSON.stringify(result)} is not allow or deny`);
    return { topic: r.topic, actions: r.actions, result, where: at };
  });
}

/**
 * @param {string} text the file's content
 * @param {string} source the file's name, for messages
 * @returns {Acl}
 */
export function parseAcl(text, source) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new AclFileError(`${source}: not valid JSON: ${/** @type {Error} */ (err).message}`);
  }
  try {
    if (!isObject(doc)) throw new AclFileError('want a JSON object with "users", "all", "anonymous", "default"');
    for (const k of Object.keys(doc)) {
      if (!['default', 'all', 'anonymous', 'users'].includes(k)) {
        throw new AclFileError(`unknown key ${JSON.stringify(k)} (keys: default, all, anonymous, users)`);
      }
    }
    const def = doc.default ?? 'ignore';
    if (def !== 'ignore' && def !== 'deny') throw new AclFileError(`default: ${JSON.stringify(def)} is not ignore or deny`);
    const users = new Map();
    if (doc.users !== undefined && !isObject(doc.users)) throw new AclFileError('users: want an object of user name -> rules');
    for (const [name, rules] of Object.entries(doc.users ?? {})) users.set(name, parseRules(rules, `users.${name}`));
    return { default: def, all: parseRules(doc.all, 'all'), anonymous: parseRules(doc.anonymous, 'anonymous'), users };
  } catch (err) {
    throw new AclFileError(`${source}: ${/** @type {Error} */ (err).message}`);
  }
}

/** @param {string} file */
export async function loadAcl(file) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AclFileError(`ACL_FILE ${file}: ${/** @type {Error} */ (err).message}`);
  }
  return parseAcl(text, file);
}

/** Seconds the broker may reuse a topic decision; also bounds how long an ACL edit takes to apply. */
export const TOPIC_TTL = Object.freeze({ allow: 60, ignore: 60, deny: 10 });

/**
 * The fields we use, type-checked; 400 when one is missing or has the wrong type.
 * @param {Record<string, unknown>} body
 * @returns {TopicFilteringRequest}
 */
export function parseTopicFiltering(body) {
  for (const k of ['client_id', 'topic']) {
    if (typeof body[k] !== 'string') throw new HttpError(400, `${k}: want a string`);
  }
  if (body.username !== undefined && typeof body.username !== 'string') throw new HttpError(400, 'username: want a string');
  const action = ACTIONS.find((a) => a === body.action);
  if (!action) throw new HttpError(400, `action: ${JSON.stringify(body.action)} is not one of ${ACTIONS.join(', ')}`);
  const b = /** @type {Record<string, string>} */ (body);
  return {
    client_id: b.client_id,
    username: b.username ?? '',
    topic: b.topic,
    action,
    qos: typeof body.qos === 'number' ? body.qos : 0,
    retain: body.retain === true,
  };
}

/** What substitute answers when a rule cannot apply as written. */
const SKIP = Symbol('skip'); // no user name for %u: the rule does not apply
const UNSAFE = Symbol('unsafe'); // a value wider than one level: no grant, and any deny matches

/**
 * A user name or client id that cannot stand in for %u / %c as one literal
 * level: a wildcard, a level separator, or a leading "$" (a client named
 * "$SYS" must not reach $SYS/# through "%c/#").
 * @param {string} v
 */
const unsafe = (v) => v.startsWith('$') || v.includes('/') || v.includes('\0') || hasWildcard(v);

/**
 * The rule's filter with %u and %c replaced, or SKIP or UNSAFE.
 * @param {string} topic
 * @param {string} username
 * @param {string} clientId
 * @returns {string | symbol}
 */
function substitute(topic, username, clientId) {
  const usesU = topic.includes('%u');
  const usesC = topic.includes('%c');
  if ((usesU && unsafe(username)) || (usesC && unsafe(clientId))) return UNSAFE;
  if ((usesU && username === '') || (usesC && clientId === '')) return SKIP;
  // One pass: a user name "%c" must not be replaced again by the client id.
  return topic.replace(/%[uc]/g, (m) => (m === '%u' ? username : clientId));
}

/**
 * Whether a rule's (substituted) filter applies to the request's topic.
 * @param {string} filter
 * @param {Rule} rule
 * @param {Action} action
 * @param {string} topic a topic name, or for subscribe a filter
 */
function applies(filter, rule, action, topic) {
  if (action !== 'subscribe') return matches(filter, topic);
  return rule.result === 'deny' ? covers(filter, topic) : overlaps(filter, topic);
}

/**
 * The ACL's answer for one check (without cache_ttl; the server adds it).
 * @param {Acl} acl
 * @param {TopicFilteringRequest} req
 * @returns {Decision & {result: 'allow' | 'deny' | 'ignore'}} (continue answers enhanced authentication only)
 */
export function decide(acl, req) {
  const { action, username, client_id: clientId } = req;
  let topic = req.topic;
  if (action === 'subscribe') {
    topic = stripShare(topic);
    const problem = filterProblem(topic);
    if (problem) return { result: 'deny', reason: `topic filter ${problem}` };
  } else if (topic === '' || hasWildcard(topic)) {
    return { result: 'deny', reason: 'a topic name must be non-empty and without wildcards' };
  }
  const rules = [...acl.all, ...(username === '' ? acl.anonymous : acl.users.get(username) ?? [])];
  /** @type {Rule | undefined} */
  let allowed;
  for (const rule of rules) {
    if (!rule.actions.includes(action)) continue;
    const filter = substitute(rule.topic, username, clientId);
    if (filter === SKIP || (filter === UNSAFE && rule.result === 'allow')) continue;
    if (filter === UNSAFE) {
      return { result: 'deny', reason: `${action} ${topic}: denied by ${rule.where} (the user name or client id cannot stand in for %u or %c)` };
    }
    if (!applies(/** @type {string} */ (filter), rule, action, topic)) continue;
    if (rule.result === 'deny') return { result: 'deny', reason: `${action} ${topic}: denied by ${rule.where}` };
    allowed ??= rule;
  }
  if (allowed) return { result: 'allow' };
  if (acl.default === 'deny') return { result: 'deny', reason: `${action} ${topic}: no rule allows it` };
  return { result: 'ignore' };
}
