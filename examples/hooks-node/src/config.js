// Configuration from the environment. Every variable the service reads is read
// here, each as `env.` and its name: test/compose finds them that way and
// checks docker-compose.yml against them.
// A bad value stops the start with a message naming the variable.

/** @typedef {import('./api.js').components['schemas']['EventType']} EventType */

/**
 * Every event type of the protocol; tsc checks each name against the spec.
 * @type {EventType[]}
 */
export const EVENT_TYPES = [
  'broker_pre_start', 'broker_post_start', 'broker_pre_shutdown', 'broker_post_shutdown',
  'broker_client_connected', 'broker_client_disconnected', 'broker_client_subscribed',
  'broker_client_unsubscribed', 'broker_message_received', 'broker_message_broadcast',
  'broker_retained_message', 'mqtt_packet_received', 'mqtt_packet_sent',
];

/**
 * What the manifest asks for by default: the lifecycle and client events,
 * without the per-message and per-packet ones that multiply traffic.
 * @type {EventType[]}
 */
export const DEFAULT_EVENTS = [
  'broker_pre_start', 'broker_post_start', 'broker_pre_shutdown', 'broker_post_shutdown',
  'broker_client_connected', 'broker_client_disconnected', 'broker_client_subscribed',
  'broker_client_unsubscribed',
];

/**
 * @typedef {object} Config
 * @property {number} port
 * @property {string} host "" = every interface
 * @property {string[]} secrets accepted HMAC secrets, current first; [] = signatures not checked
 * @property {string} usersFile "" = no users (authenticate answers ignore)
 * @property {string} aclFile "" = no rules (topic_filtering answers ignore)
 * @property {number} maxBodyBytes
 * @property {number} recentEvents
 * @property {EventType[]} events
 * @property {string} disabledFile "" = disabled users kept in memory only
 * @property {string} adminToken bearer token of the /users admin routes; "" = routes off
 * @property {string} mqttdAdminURL the broker's admin listener, for the revoke recipe
 * @property {string} mqttdAdminToken the broker's admin.token
 */

export class ConfigError extends Error {}

/**
 * @param {string | undefined} v
 * @param {string} name
 * @param {number} def
 * @param {number} min
 * @param {number} max
 */
function intVar(v, name, def, min, max) {
  if (v === undefined || v === '') return def;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new ConfigError(`${name}=${JSON.stringify(v)}: want an integer from ${min} to ${max}`);
  }
  return Number(v);
}

/**
 * @param {Record<string, string | undefined>} env usually process.env
 * @returns {Config}
 */
export function loadConfig(env) {
  const secrets = [];
  if (env.HOOKS_SECRET) secrets.push(env.HOOKS_SECRET);
  if (env.HOOKS_SECRET_PREVIOUS) {
    if (!env.HOOKS_SECRET) throw new ConfigError('HOOKS_SECRET_PREVIOUS is set without HOOKS_SECRET (set the new secret too)');
    secrets.push(env.HOOKS_SECRET_PREVIOUS);
  }
  /** @type {EventType[]} */
  let events = DEFAULT_EVENTS;
  if (env.EVENTS !== undefined) {
    const names = env.EVENTS.split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const n of names) {
      if (!EVENT_TYPES.includes(/** @type {EventType} */ (n))) {
        throw new ConfigError(`EVENTS: ${JSON.stringify(n)} is not an event type (use ${EVENT_TYPES.join(', ')})`);
      }
    }
    events = /** @type {EventType[]} */ (names);
  }
  return {
    port: intVar(env.PORT, 'PORT', 3000, 0, 65535),
    host: env.HOST ?? '',
    secrets,
    usersFile: env.USERS_FILE ?? '',
    aclFile: env.ACL_FILE ?? '',
    maxBodyBytes: intVar(env.MAX_BODY_BYTES, 'MAX_BODY_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    recentEvents: intVar(env.RECENT_EVENTS, 'RECENT_EVENTS', 100, 0, 100000),
    events,
    disabledFile: env.DISABLED_FILE ?? '',
    adminToken: env.HOOKS_ADMIN_TOKEN ?? '',
    mqttdAdminURL: env.MQTTD_ADMIN_URL || 'http://127.0.0.1:9180',
    mqttdAdminToken: env.MQTTD_ADMIN_TOKEN ?? '',
  };
}
