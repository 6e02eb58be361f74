#!/usr/bin/env node
// Entry point: runs the compiled CLI (npm run build). Exit code comes from the command.
import { main, quietOnClosedOutput } from '../dist/cli/main.js';

quietOnClosedOutput(process.argv[2] === 'run');

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`cvm-agent: internal error: ${err?.stack ?? err}\n`);
    process.exitCode = 70;
  },
);
