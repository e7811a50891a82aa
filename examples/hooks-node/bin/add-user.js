#!/usr/bin/env node
// npm run add-user -- FILE NAME
// npm run add-scram-user -- FILE NAME   (node bin/add-user.js --scram FILE NAME)
//
// Adds NAME to the users file FILE (created if missing), or replaces NAME's
// hash: scrypt, or with --scram the SCRAM-SHA-256 keys (salt, iterations,
// StoredKey, ServerKey), which allow MQTT 5 enhanced authentication with
// SCRAM-SHA-256 as well as a plain password. The password comes from standard input: piped (one trailing newline
// is dropped), or typed at a terminal without echo. The file is replaced
// atomically (temporary file + rename), so a running hooks-node never reads
// half of it; send it SIGHUP to load the change.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { hashPassword, nameProblem, parseUsers, scramHash, upsertUser } from '../src/users.js';

const USAGE = 'usage: npm run add-user -- FILE NAME, or npm run add-scram-user -- FILE NAME   (password on standard input)';

/** Reads a password typed at the terminal, without echoing it. */
function promptHidden() {
  return new Promise((resolve, reject) => {
    process.stderr.write('password: ');
    const stdin = process.stdin;
    stdin.setRawMode(true);
    stdin.resume();
    let typed = '';
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(typed);
          return;
        }
        if (ch === '\u0003') { // Ctrl-C
          finish();
          reject(new Error('cancelled'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    const finish = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

/** Reads all of a piped standard input, minus one trailing newline. */
async function readPiped() {
  /** @type {Buffer[]} */
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function main() {
  const args = process.argv.slice(2);
  const scram = args[0] === '--scram';
  const [file, name, ...rest] = scram ? args.slice(1) : args;
  if (!file || name === undefined || rest.length > 0) throw new Error(USAGE);
  const problem = nameProblem(name);
  if (problem) throw new Error(problem);

  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'ENOENT') throw err;
  }
  parseUsers(text, file); // refuse to rewrite a file we could not read back

  const password = process.stdin.isTTY ? await promptHidden() : await readPiped();
  if (password === '') throw new Error('the password is empty');

  const pw = Buffer.from(password, 'utf8');
  const hash = scram ? await scramHash(pw) : await hashPassword(pw);
  const tmp = `${file}.tmp-${process.pid}`;
  // 0644: the container runs as another user and must read it; what it
  // holds are salted hashes and keys, not passwords.
  await writeFile(tmp, upsertUser(text, name, hash), { mode: 0o644 });
  await rename(tmp, file);
  process.stderr.write(`${file}: ${name} set\n`);
}

main().catch((err) => {
  process.stderr.write(`add-user: ${err.message}\n`);
  process.exit(2);
});
