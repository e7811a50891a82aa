// MQTT topic matching for the ACL. Two questions are asked of a rule's filter:
//
//   matches(filter, name):  does the filter match this topic name? (publish, receive)
//   covers(filter, sub):    does the filter match every topic the subscription
//                           filter `sub` can match? (subscribe)
//
// "covers" is what makes a subscribe check sound: a rule `sensors/#` allows a
// subscription to `sensors/+/temp`, but a rule `sensors/+/temp` does not allow
// `sensors/#`, which would also deliver `sensors/secret`. The check is
// level by level and errs on the side of "no": `+/#` does not cover `#`,
// although both match every topic not starting with "$".

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
 * The filter a shared subscription ($share/{group}/{filter}) applies; the
 * ACL is about topics, not about the group.
 * @param {string} filter
 */
export function stripShare(filter) {
  if (!filter.startsWith('$share/')) return filter;
  const slash = filter.indexOf('/', '$share/'.length);
  return slash < 0 ? filter : filter.slice(slash + 1);
}
