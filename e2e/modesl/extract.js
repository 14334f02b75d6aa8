#!/usr/bin/env node
// Turns a recorded ESL exchange (JSON lines, one per TCP read or write:
// {"dir":"fs>app"|"app>fs","t_ms":..,"b64":".."}) into the raw byte stream
// of one direction, for bench-decode.js.
//
// usage: node extract.js <exchange.jsonl> <out-file|-> [--dir fs>app|app>fs]
'use strict';
const fs = require('fs');

const args = process.argv.slice(2);
let dir = 'fs>app';
const i = args.indexOf('--dir');
if (i >= 0) {
  dir = args[i + 1];
  args.splice(i, 2);
}
if (args.length !== 2 || (dir !== 'fs>app' && dir !== 'app>fs')) {
  console.error('usage: node extract.js <exchange.jsonl> <out-file|-> [--dir fs>app|app>fs]');
  process.exit(2);
}
const [src, dst] = args;
const parts = [];
fs.readFileSync(src, 'utf8').split('\n').forEach((line, n) => {
  if (!line.trim()) return;
  let item;
  try {
    item = JSON.parse(line);
  } catch (e) {
    console.error(`${src}:${n + 1}: not JSON: ${e.message}`);
    process.exit(1);
  }
  if (item.dir === dir && item.b64) parts.push(Buffer.from(item.b64, 'base64'));
});
const bytes = Buffer.concat(parts);
if (dst === '-') process.stdout.write(bytes);
else fs.writeFileSync(dst, bytes);
console.error(`${bytes.length} bytes of ${dir} from ${parts.length} reads`);
