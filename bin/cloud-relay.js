#!/usr/bin/env node
// Runs the TypeScript entry point through tsx, from wherever the command is invoked.
import { register } from 'tsx/esm/api';
register();
await import('../cloud-relay/cli.ts');
