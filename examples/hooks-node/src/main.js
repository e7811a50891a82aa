// The hooks-node process: configuration from the environment, the users and
// ACL files, signals. Diagnostics go to stderr as JSON lines; stdout carries
// only the received events (one JSON line each), so it can be piped to jq.
//
//   SIGTERM, SIGINT  stop accepting, finish the requests in flight, exit 0
//                    (connections still open after 10 s are cut; a second
//                    signal exits at once)
//   SIGHUP           reload USERS_FILE, ACL_FILE and DISABLED_FILE; a broken file is
//                    reported and the previous content stays in force
import { readFileSync } from 'node:fs';
import { AclFileError, emptyAcl, loadAcl } from './acl.js';
import { ConfigError, loadConfig } from './config.js';
import { createServer } from './server.js';
import { loadUsers, UsersFileError } from './users.js';
import { loadDisabled } from './revoke.js';

/** @typedef {import('./server.js').Log} Log */

const DRAIN_MS = 10_000;

/** @type {Log} */
const log = (level, msg, fields = {}) => {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
};

/** @param {import('./config.js').Config} config */
async function loadState(config) {
  return {
    users: config.usersFile ? await loadUsers(config.usersFile) : new Map(),
    acl: config.aclFile ? await loadAcl(config.aclFile) : emptyAcl(),
    // Without DISABLED_FILE the list lives in memory: a reload keeps it.
    ...(config.disabledFile ? { disabled: await loadDisabled(config.disabledFile) } : {}),
  };
}

/** @param {unknown} err */
const isConfigProblem = (err) => err instanceof ConfigError || err instanceof UsersFileError || err instanceof AclFileError;

async function main() {
  let config;
  let state;
  try {
    config = loadConfig(process.env);
    state = await loadState(config);
  } catch (err) {
    if (!isConfigProblem(err)) throw err;
    log('error', /** @type {Error} */ (err).message);
    process.exit(2);
  }
  if (config.secrets.length === 0) log('warn', 'HOOKS_SECRET is not set: requests are not authenticated; set it to the broker\'s plugin secret');
  if (!config.usersFile) log('warn', 'USERS_FILE is not set: authenticate answers ignore to everyone');
  if (!config.aclFile) log('warn', 'ACL_FILE is not set: topic_filtering answers ignore to everything');

  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const server = createServer({ config, state, version: pkg.version, log });
  server.on('error', (err) => {
    log('error', `cannot listen on ${config.host || '*'}:${config.port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(config.port, config.host || undefined, () => {
    const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
    log('info', 'listening', { port: addr.port, address: addr.address, users: state.users.size, version: pkg.version });
  });

  process.on('SIGHUP', () => {
    loadState(config).then(
      (next) => {
        Object.assign(state, next);
        log('info', 'reloaded', { users: next.users.size });
      },
      (err) => log('error', `reload failed, keeping the previous files: ${err.message}`),
    );
  });

  let stopping = false;
  /** @param {NodeJS.Signals} signal */
  const stop = (signal) => {
    if (stopping) {
      log('warn', 'second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log('info', 'shutting down', { signal });
    const force = setTimeout(() => {
      log('warn', `connections still open after ${DRAIN_MS / 1000}s: closing them`);
      server.closeAllConnections();
    }, DRAIN_MS);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      log('info', 'stopped');
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  log('error', 'crashed', { error: String(err?.stack ?? err) });
  process.exit(1);
});
