#!/usr/bin/env node
// Part of `npm run build`: tsc compiles only TypeScript, so the dashboard's static files (plain
// HTML, one ES module, CSS; no front-end build step) are copied next to the compiled
// cloud-relay/api/dashboard-routes.js, which serves them from ./dashboard/.
import { cpSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const from = resolve(root, 'cloud-relay/api/dashboard');
const to = resolve(root, 'dist/cloud-relay/api/dashboard');
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
console.log(`copied ${from} -> ${to}`);
