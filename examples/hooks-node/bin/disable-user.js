#!/usr/bin/env node
// npm run disable-user -- NAME     (and npm run enable-user -- NAME)
//
// Asks the running hooks-node to disable (or enable) NAME: it marks the
// user in its DISABLED_FILE and then has the broker purge the user's cached
// decisions and kick their clients, so the revocation holds now, not when
// a cache entry expires. The service is found at HOOKS_URL (default
// http://127.0.0.1:3000) and answers only with HOOKS_ADMIN_TOKEN.
const USAGE = 'usage: npm run disable-user -- NAME   (or enable-user; HOOKS_URL and HOOKS_ADMIN_TOKEN from the environment)';

async function main() {
  const [action, name, ...rest] = process.argv.slice(2);
  if (!['disable', 'enable'].includes(action ?? '') || !name || rest.length > 0) throw new Error(USAGE);
  const token = process.env.HOOKS_ADMIN_TOKEN ?? '';
  if (!token) throw new Error('HOOKS_ADMIN_TOKEN is not set (the same value the running hooks-node has)');
  const base = (process.env.HOOKS_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
  const res = await fetch(`${base}/users/${encodeURIComponent(name)}/${action}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(15_000),
  });
  const body = /** @type {{error?: string, kicked?: string[], purged?: number}} */ (await res.json().catch(() => ({})));
  if (!res.ok) throw new Error(`${base} answered ${res.status}: ${body.error ?? 'no message'}`);
  const kicked = body.kicked?.length ? `, kicked ${body.kicked.join(', ')}` : '';
  process.stdout.write(`${name} ${action}d${kicked}; ${body.purged} cached decisions purged at the broker\n`);
}

main().catch((err) => {
  process.stderr.write(`${process.argv[2] ?? 'disable'}-user: ${err.message}\n`);
  process.exit(2);
});
