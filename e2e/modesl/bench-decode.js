#!/usr/bin/env node
// Decodes a recorded FreeSWITCH byte stream with modesl's own Parser, driven
// the way modesl's Connection drives it (a socket-like EventEmitter whose
// 'data' events the Parser listens to; Connection.js:731-734), for about N
// seconds on one core, and prints one JSON line with the rate. `make
// bench-esl` (e2e/cmd/eslbench) runs it beside pkg/esl on the same bytes.
//
// usage: node bench-decode.js <raw-bytes-file> [--seconds N] [--chunk BYTES]
//                             [--via parser|connection]
//
// The file is replayed as one endless FreeSWITCH->app stream: one long-lived
// Parser, fed chunk after chunk of --chunk bytes (64 KiB, what a Node socket
// read delivers at most), chunks running on across the end of one pass into
// the next as a socket's reads would. --via connection goes one layer up:
// the bytes reach a real esl.Connection (outbound constructor, writes
// discarded), so modesl's event-name dispatch through EventEmitter2
// wildcards is counted too; the default is the Parser alone (the decoder).
//
// Before timing, one pass is checked against an independent framing of the
// file: as many frames and text/event-* frames as the file holds, the same
// Event-Name sequence, URL-decoded header values, event bodies extracted.
// Any mismatch exits 1 with a message on stderr.
//
// "One core": the JavaScript runs on one thread; V8's GC helper threads are
// switched off by re-running this script under --single-threaded-gc
// (unless ESL_BENCH_GC_THREADS=1).
'use strict';
const fs = require('fs');
const { EventEmitter } = require('events');
const { spawnSync } = require('child_process');

if (!process.execArgv.includes('--single-threaded-gc') && process.env.ESL_BENCH_GC_THREADS !== '1') {
  const r = spawnSync(process.execPath, ['--single-threaded-gc', ...process.execArgv, __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status === null ? 1 : r.status);
}

const esl = require('modesl');
const Parser = require('modesl/lib/esl/Parser');
const version = require('modesl/package.json').version;

function die(msg, code = 1) {
  console.error('bench-decode: ' + msg);
  process.exit(code);
}

// ---- arguments ----
const argv = process.argv.slice(2);
let file = null;
const opts = { seconds: 3, chunk: 64 * 1024, via: 'parser' };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--seconds' || a === '--chunk' || a === '--via') {
    if (i + 1 >= argv.length) die(`${a} needs a value`, 2);
    opts[a.slice(2)] = argv[++i];
  } else if (a.startsWith('--')) {
    die(`unknown option ${a}\nusage: node bench-decode.js <raw-bytes-file> [--seconds N] [--chunk BYTES] [--via parser|connection]`, 2);
  } else if (file === null) {
    file = a;
  } else {
    die(`unexpected argument ${a}`, 2);
  }
}
if (!file) die('usage: node bench-decode.js <raw-bytes-file> [--seconds N] [--chunk BYTES] [--via parser|connection]', 2);
const seconds = Number(opts.seconds);
const chunk = Math.floor(Number(opts.chunk));
if (!(seconds > 0)) die('--seconds must be a positive number', 2);
if (!(chunk > 0)) die('--chunk must be a positive integer', 2);
if (opts.via !== 'parser' && opts.via !== 'connection') die('--via is parser or connection', 2);

let stream;
try {
  stream = fs.readFileSync(file);
} catch (e) {
  die(`cannot read ${file}: ${e.message}`, 2);
}
if (stream.length === 0) die(`${file} is empty`);

// ---- independent framing of the file, for the check only ----
// Envelope: header lines up to a blank line; a Content-Length header means
// that many body bytes follow. Only what the check needs is extracted.
function frameFile(buf) {
  const frames = [];
  let off = 0;
  while (off < buf.length) {
    const end = buf.indexOf('\n\n', off, 'latin1');
    if (end < 0) die(`the file ends inside a header block at byte ${off}: not a whole FreeSWITCH stream`);
    const head = buf.toString('latin1', off, end);
    off = end + 2;
    const m = /(?:^|\n)Content-Length: *(\d+)/.exec(head);
    const ct = (/(?:^|\n)Content-Type: *([^\n]*)/.exec(head) || [])[1];
    let body = null;
    if (m && Number(m[1]) > 0) {
      const n = Number(m[1]);
      if (off + n > buf.length) die('the file ends inside a frame body: not a whole FreeSWITCH stream');
      body = buf.subarray(off, off + n);
      off += n;
    }
    const f = { contentType: ct };
    if (ct === 'text/event-plain' && body) {
      const inner = body.toString('latin1');
      f.name = (/(?:^|\n)Event-Name: *([^\n]*)/.exec(inner) || [])[1];
      const innerEnd = inner.indexOf('\n\n');
      const cl = /(?:^|\n)Content-Length: *(\d+)/.exec(innerEnd < 0 ? inner : inner.slice(0, innerEnd));
      f.bodyLen = cl ? Number(cl[1]) : 0;
    } else if (ct === 'text/event-json' && body) {
      try {
        const j = JSON.parse(body.toString('utf8'));
        f.name = j['Event-Name'];
        f.bodyLen = j._body ? Buffer.byteLength(j._body) : 0;
      } catch (e) { /* counted, not named */ }
    }
    frames.push(f);
  }
  return frames;
}

const expected = frameFile(stream);
const expectedEvents = expected.filter((f) => /^text\/event-/.test(f.contentType));
if (expectedEvents.length === 0) die(`${file} holds no text/event-* frame: nothing to decode`);

// ---- the decoder under test, fed like a socket ----
// Returns { feed(buf), onFrame(fn) }: onFrame's fn gets (event, envelopeHeaders)
// for every frame modesl emits.
function makeDecoder(onFrame) {
  const socket = new EventEmitter(); // stands in for net.Socket: Parser uses 'data'/'end' (Parser.js:22-23)
  if (opts.via === 'parser') {
    const parser = new Parser(socket);
    parser.on('error', (e) => die('modesl Parser error: ' + (e && e.message)));
    parser.on('esl::event', onFrame); // exactly what Connection._onConnect does (Connection.js:734)
  } else {
    socket.write = () => true; // the replies modesl sends (connect, auth, event json ...) go nowhere
    socket.end = () => {};
    const conn = new esl.Connection(socket); // outbound-mode constructor: wraps an existing socket
    // A recorded stream answers commands this Connection never sent: keep its
    // own protocol moves (auth on auth/request, connect/subscribe callbacks)
    // out of the way so that every emit counted comes from _onEvent.
    conn.removeAllListeners('esl::event::auth::request');
    conn.cmdCallbackQueue.length = 0;
    conn.on('error', (e) => die('modesl Connection error: ' + (e && e.message)));
    conn.on('esl::event::**', (event, headers) => onFrame(event, headers));
  }
  return (buf) => socket.emit('data', buf);
}

// First pass, checked.
{
  const got = [];
  const feed = makeDecoder((event, headers) => got.push({ event, headers }));
  for (let off = 0; off < stream.length; off += chunk) feed(stream.subarray(off, Math.min(off + chunk, stream.length)));
  const gotEvents = got.filter((g) => /^text\/event-/.test(g.headers['Content-Type']));
  if (got.length !== expected.length) die(`modesl emitted ${got.length} frames for one pass, the file holds ${expected.length}`);
  if (gotEvents.length !== expectedEvents.length) die(`modesl decoded ${gotEvents.length} events for one pass, the file holds ${expectedEvents.length} text/event-* frames`);
  let dated = 0, bodies = 0, xmlWarned = false;
  gotEvents.forEach((g, i) => {
    const want = expectedEvents[i];
    const name = g.event.getHeader('Event-Name');
    if (want.name !== undefined && name !== want.name) die(`event #${i}: modesl decoded Event-Name ${JSON.stringify(name)}, the file says ${JSON.stringify(want.name)}`);
    const local = g.event.getHeader('Event-Date-Local');
    if (local !== null && g.headers['Content-Type'] === 'text/event-xml') {
      // modesl's XML path (Parser.js:122-149) does not URL-decode values.
      if (!xmlWarned) console.error('bench-decode: note: modesl leaves text/event-xml header values URL-encoded: ' + JSON.stringify(local));
      xmlWarned = true;
    } else if (local !== null) {
      if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(local)) die(`event #${i}: Event-Date-Local not URL-decoded: ${JSON.stringify(local)}`);
      dated++;
    }
    if (want.bodyLen > 0) {
      const body = g.event.getBody();
      if (!body || Buffer.byteLength(body) !== want.bodyLen) die(`event #${i} (${name}): modesl's body has ${body ? Buffer.byteLength(body) : 0} bytes, the event says Content-Length ${want.bodyLen}`);
      bodies++;
    }
  });
  if (dated === 0 && !xmlWarned) console.error('bench-decode: warning: no event carries Event-Date-Local, URL-decoding not checked');
  if (process.env.ESL_BENCH_VERBOSE) console.error(`bench-decode: check ok: ${got.length} frames, ${gotEvents.length} events (${dated} dated, ${bodies} with a body) per pass`);
}

// Timed run: one long-lived decoder, an endless stream.
let events = 0, frames = 0;
const feed = makeDecoder((event, headers) => {
  frames++;
  const ct = headers['Content-Type'];
  if (ct !== undefined && ct.startsWith('text/event-') && event.getHeader('Event-Name') !== null) events++;
});
// The stream twice over, so that a chunk crossing the end of a pass is one slice.
const ring = Buffer.concat([stream, stream.subarray(0, Math.min(chunk, stream.length))]);
const step = Math.min(chunk, stream.length);
let off = 0, bytes = 0;
const cpu0 = process.cpuUsage();
const start = process.hrtime.bigint();
const deadline = start + BigInt(Math.round(seconds * 1e9));
let now = start;
while (now < deadline) {
  feed(ring.subarray(off, off + step));
  bytes += step;
  off += step;
  if (off >= stream.length) off -= stream.length;
  now = process.hrtime.bigint();
}
const elapsed = Number(now - start) / 1e9;
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({
  impl: 'modesl',
  version,
  via: opts.via,
  events,
  frames,
  bytes,
  seconds: elapsed,
  events_per_sec: events / elapsed,
  mb_per_sec: bytes / elapsed / 1e6,
  cpu_seconds: (cpu.user + cpu.system) / 1e6,
  chunk: step,
  node: process.version,
}));
