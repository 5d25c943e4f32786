#!/usr/bin/env node
// Runs the built CLI (npm run build). For development without a build: node --import tsx src/cli/run.ts
import { main } from '../dist/src/cli/main.js';

await main(process.argv);
