// The types in src/api.d.ts come from api/openapi.yaml. If the spec changes and
// nobody regenerates them (npm run gen:types), this fails; and tsc checks the
// JavaScript against them, so a renamed field breaks the build here rather
// than at the broker.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (/** @type {string} */ name) => {
  const p = join(root, 'node_modules', '.bin', name);
  assert.ok(existsSync(p), `${p} is missing: run npm ci in examples/hooks-node`);
  return p;
};

describe('generated types', () => {
  it('src/api.d.ts is what openapi-typescript makes of ../../api/openapi.yaml', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hooks-node-types-'));
    after(() => rm(dir, { recursive: true, force: true }));
    const fresh = join(dir, 'api.d.ts');
    await run(bin('openapi-typescript'), ['../../api/openapi.yaml', '--output', fresh], { cwd: root });
    const committed = await readFile(join(root, 'src', 'api.d.ts'), 'utf8');
    assert.ok(committed === (await readFile(fresh, 'utf8')),
      'src/api.d.ts is out of date with api/openapi.yaml: run `npm run gen:types` in examples/hooks-node and commit it');
  });

  it('the JavaScript type-checks against them (npm run typecheck)', async () => {
    try {
      await run(bin('tsc'), ['-p', '.'], { cwd: root });
    } catch (err) {
      const e = /** @type {{stdout?: string}} */ (err);
      assert.fail(`tsc found type errors:\n${e.stdout ?? err}`);
    }
  });
});
