import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The dashboard's files, served as they are (no build step); next to this module in the source tree and in dist/ (scripts/copy-dashboard.mjs). */
const DIR = fileURLToPath(new URL('./dashboard/', import.meta.url));

/**
 * One of the dashboard's files (index.html, app.js, style.css). The bundle of the packaged relay
 * replaces this module with one holding the files' bytes (scripts/bundle.mjs): a single
 * executable has no folder beside it to read them from.
 */
export function dashboardFile(name: string): Buffer {
  return readFileSync(`${DIR}${name}`);
}
