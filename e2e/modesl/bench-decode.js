#!/usr/bin/env node
// Decodes a recorded FreeSWITCH byte stream with modesl's own Parser, the
// way modesl's Connection drives it from a socket, for as long as asked, and
// prints one JSON line with the rate. `make bench-esl` runs it beside pkg/esl.
//
// usage: node bench-decode.js <raw-bytes-file> [--seconds N] [--chunk BYTES]
'use strict';
const fs = require('fs');
const { EventEmitter } = require('events');
const Parser = require('modesl/lib/esl/Parser');
const version = require('modesl/package.json').version;

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench-decode.js <raw-bytes-file> [--seconds N] [--chunk BYTES]');
  process.exit(2);
}
const seconds = arg('--seconds', 3);
const chunk = arg('--chunk', 64 * 1024);
const stream = fs.readFileSync(file);

// Count the text/event-plain frames so a pass can be checked.
const expectedEvents = (stream.toString('latin1').match(/Content-Type: text\/event-(plain|json|xml)\n/g) || []).length;

function pass(onEvent) {
  // A stand-in socket: the Parser only listens to 'data' and 'end'.
  const socket = new EventEmitter();
  const parser = new Parser(socket);
  parser.on('esl::event', onEvent);
  for (let off = 0; off < stream.length; off += chunk) {
    socket.emit('data', stream.subarray(off, Math.min(off + chunk, stream.length)));
  }
}

// First pass: check that modesl really decoded the events.
let events = 0, frames = 0, checked = false;
pass((evt, headers) => {
  frames++;
  if (/^text\/event-/.test(headers['Content-Type'])) {
    events++;
    const local = evt.getHeader('Event-Date-Local');
    if (!checked && local) {
      if (local.includes('%20')) {
        console.error('modesl did not URL-decode Event-Date-Local: ' + local);
        process.exit(1);
      }
      checked = true;
    }
  }
});
if (events !== expectedEvents || events === 0) {
  console.error(`modesl decoded ${events} events per pass, the stream holds ${expectedEvents}`);
  process.exit(1);
}

events = 0; frames = 0;
let bytes = 0;
const start = process.hrtime.bigint();
const deadline = start + BigInt(Math.round(seconds * 1e9));
while (process.hrtime.bigint() < deadline) {
  pass((evt, headers) => {
    frames++;
    if (/^text\/event-/.test(headers['Content-Type']) && evt.getHeader('Event-Name')) events++;
  });
  bytes += stream.length;
}
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
console.log(JSON.stringify({
  impl: 'modesl', version, events, frames, bytes, seconds: elapsed,
  events_per_sec: events / elapsed, mb_per_sec: bytes / elapsed / 1e6,
}));
