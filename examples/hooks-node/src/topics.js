// MQTT topic matching for the ACL. Three questions are asked of a rule's filter:
//
//   matches(filter, name):  does the filter match this topic name? (publish, receive)
//   covers(filter, sub):    does the filter match every topic the subscription
//                           filter `sub` can match? (a deny refuses a subscription)
//   overlaps(filter, sub):  does the filter match at least one topic `sub` can
//                           match? (a grant allows a subscription)
//
// A deny `sensors/#` covers a subscription to `sensors/+/temp` and refuses it;
// a deny `sensors/secret/#` only overlaps `sensors/#`, which is then granted,
// and the broker's receive check keeps sensors/secret/... from each delivery.
// Both are exact: the same answers as trying every topic (the Go acl-file
// checks its versions against brute force; testdata/acl-cases.json holds
// the rows both read).

/** @param {string} s */
export function hasWildcard(s) {
  return s.includes('+') || s.includes('#');
}

/**
 * Checks a topic filter's syntax (MQTT 3.1.1 §4.7.1): `#` only as the whole
 * last level, `+` only as a whole level. Returns the problem or "".
 * @param {string} filter
 */
export function filterProblem(filter) {
  if (filter === '') return 'is empty';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i];
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return '"#" must be the whole last level';
    if (l.includes('+') && l !== '+') return '"+" must be a whole level';
  }
  return '';
}

/**
 * A filter starting with a wildcard does not match topics starting with "$"
 * [MQTT-4.7.2-1], so a rule `#` does not reach $SYS.
 * @param {string[]} f filter levels
 * @param {string[]} t topic (or subscription) levels
 */
function dollarBlocked(f, t) {
  return t[0].startsWith('$') && (f[0] === '+' || f[0] === '#');
}

/**
 * @param {string} filter a valid topic filter
 * @param {string} name a topic name (no wildcards)
 */
export function matches(filter, name) {
  const f = filter.split('/');
  const t = name.split('/');
  if (dollarBlocked(f, t)) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true; // also matches the parent: "a/#" matches "a"
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * @param {string} filter a valid topic filter (the rule)
 * @param {string} sub a valid topic filter (the subscription)
 */
export function covers(filter, sub) {
  const f = filter.split('/');
  const s = sub.split('/');
  if (dollarBlocked(f, s)) return false;
  // "+/#" matches every topic of one level or more, as "#" does: "#" has no
  // parent level to add at the top.
  if (filter === '+/#' && sub === '#') return true;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= s.length) return false;
    if (s[i] === '#') return false; // the subscription reaches deeper than this rule
    if (f[i] === '+') continue; // a literal or "+" in the subscription: one level either way
    if (s[i] !== f[i]) return false; // includes s[i] === "+" under a literal
  }
  // The rule ran out of levels: covered only if the subscription did too
  // ("a/b" is not covered by "a", and neither is "a/#").
  return s.length === f.length;
}

/**
 * @param {string} filter a valid topic filter (the rule)
 * @param {string} sub a valid topic filter (the subscription)
 */
export function overlaps(filter, sub) {
  const f = filter.split('/');
  const s = sub.split('/');
  if (dollarBlocked(f, s) || dollarBlocked(s, f)) return false;
  for (let i = 0; ; i++) {
    // "#" on either side matches what is left of the other, or nothing.
    if (f[i] === '#' || s[i] === '#') return true;
    if (i === f.length || i === s.length) return f.length === s.length; // both used up at once
    if (f[i] !== '+' && s[i] !== '+' && f[i] !== s[i]) return false;
  }
}

/**
 * The filter a shared subscription ($share/{group}/{filter}) applies; the
 * ACL is about topics, not about the group.
 * @param {string} filter
 */
export function stripShare(filter) {
  if (!filter.startsWith('$share/')) return filter;
  const slash = filter.indexOf('/', '$share/'.length);
  return slash < 0 ? filter : filter.slice(slash + 1);
}
