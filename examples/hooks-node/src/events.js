// Event intake: the most recent events, kept in memory for GET /events/recent,
// and de-duplication. The broker retries a batch after a timeout or a 5xx, so
// an event may arrive twice; it keeps its id, and we log it once.

/** @typedef {import('./api.js').components['schemas']['Event']} Event */

/** Ids remembered for de-duplication, at least. */
const MIN_SEEN = 1024;

export class RecentEvents {
  /** @param {number} capacity events kept; 0 keeps none */
  constructor(capacity) {
    this.capacity = capacity;
    /** @type {Event[]} */
    this.events = [];
    // A Set iterates in insertion order, so its first entry is the oldest id.
    /** @type {Set<string>} */
    this.seen = new Set();
    this.seenCapacity = Math.max(MIN_SEEN, capacity);
  }

  /**
   * Records ev; false when its id was already seen (a retried delivery).
   * @param {Event} ev
   */
  add(ev) {
    if (this.seen.has(ev.id)) return false;
    this.seen.add(ev.id);
    if (this.seen.size > this.seenCapacity) this.seen.delete(this.seen.values().next().value ?? '');
    if (this.capacity > 0) {
      this.events.push(ev);
      if (this.events.length > this.capacity) this.events.shift();
    }
    return true;
  }

  /** Oldest first. */
  list() {
    return [...this.events];
  }
}

/**
 * What is wrong with a POST /events body, or "". Only what we rely on is
 * checked (each event an object with a string id and type); other fields are
 * passed through, since later broker versions may add some.
 * @param {unknown} body
 */
export function batchProblem(body) {
  if (typeof body !== 'object' || body === null || !('events' in body) || !Array.isArray(body.events)) {
    return 'want {"events": [...]}';
  }
  if (body.events.length === 0) return 'events is empty';
  for (const [i, ev] of body.events.entries()) {
    if (typeof ev !== 'object' || ev === null || Array.isArray(ev)) return `events[${i}] is not an object`;
    if (typeof ev.id !== 'string' || ev.id === '') return `events[${i}].id: want a non-empty string`;
    if (typeof ev.type !== 'string') return `events[${i}].type: want a string`;
  }
  return '';
}
