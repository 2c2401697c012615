// Builds clients/browser/sluice.min.js — what Sluice serves at /sluice.js — from
// clients/browser/sluice.js with terser (a build-time tool; the tracker itself has no
// dependencies). Run `node tests/browser/build-tracker.mjs` after editing the source;
// tracker.test.mjs fails while the built file is stale.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import { minify } from 'terser';

const source = fileURLToPath(new URL('../../clients/browser/sluice.js', import.meta.url));
export const built = fileURLToPath(new URL('../../clients/browser/sluice.min.js', import.meta.url));

export async function buildTracker() {
  const { code } = await minify(await readFile(source, 'utf8'), {
    ecma: 2020,
    compress: { passes: 2 },
    mangle: { toplevel: true },
    format: { comments: false, preamble: '/* Sluice tracker: the source is clients/browser/sluice.js */' },
  });
  return code + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(built, await buildTracker());
  console.log(`wrote ${built}`);
}
