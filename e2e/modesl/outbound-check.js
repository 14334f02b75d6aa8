#!/usr/bin/env node
// Serves FreeSWITCH's `socket` dialplan application (outbound ESL) with
// modesl's own Server ({myevents: true}): for each call it reports the
// channel data modesl read from the connect reply, answers, plays a prompt
// waiting for modesl's execute callback (CHANNEL_EXECUTE_COMPLETE matched by
// Application-UUID), hangs up, and prints one JSON line per step for the e2e
// fidelity test to assert on.
//
// usage: node outbound-check.js --port P [--calls N] [--timeout-ms N]
//          [--playback ARG] [--wire]
//
// --port 0 listens on a free port (reported in the listening line).
// Without --calls it serves until --timeout-ms, then prints done and exits 0;
// with --calls N it exits 0 once N calls were handled, or fails on timeout.
//
// Steps (one JSON object per stdout line):
//   {"step":"listening","port":P}
//   {"step":"connect","uuid":..,"caller":"+441234567890","caller_name":"Alice","destination":"8084","socket_mode":"async","control":"full"}
//   {"step":"executed","uuid":..,"app":"answer","response":"_none_","format":"text/event-json"}
//   {"step":"executed","uuid":..,"app":"playback","response":"FILE PLAYED","format":..}
//   {"step":"disconnect_notice","uuid":..,"disposition":"disconnect"}   (if FreeSWITCH sends one)
//   {"step":"hungup","uuid":..}
//   {"step":"done","calls":N}                                          exit 0
//   {"step":"error","message":".."}                                    exit 1
// --wire adds {"step":"wire","uuid":..,"dir":"app>fs"|"fs>app","text":".."} lines.
'use strict';
const net = require('net');
const esl = require('modesl');

// ---- arguments ----
const USAGE = 'usage: node outbound-check.js --port P [--calls N] [--timeout-ms N] [--playback ARG] [--wire]';
const opts = { port: '8084', calls: '0', 'timeout-ms': '10000', playback: 'tone_stream://%(100,100,440)', wire: false };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--') || !Object.prototype.hasOwnProperty.call(opts, name)) usage(`unknown argument ${argv[i]}`);
    if (typeof opts[name] === 'boolean') opts[name] = true;
    else if (i + 1 < argv.length) opts[name] = argv[++i];
    else usage(`${argv[i]} needs a value`);
  }
}
function usage(msg) {
  console.error(msg + '\n' + USAGE);
  process.exit(2);
}
const port = Number(opts.port);
const calls = Number(opts.calls);
const timeoutMs = Number(opts['timeout-ms']);
if (!(Number.isInteger(port) && port >= 0 && port < 65536)) usage('--port must be a TCP port (0: any free one)');
if (!(Number.isInteger(calls) && calls >= 0)) usage('--calls must be a whole number');
if (!(timeoutMs > 0)) usage('--timeout-ms must be positive');

// ---- output ----
let finished = false; // done or error printed: nothing more is reported
let handled = 0;      // calls answered, played and hung up
const out = (o) => { if (!finished) process.stdout.write(JSON.stringify(o) + '\n'); };
const inProgress = new Map(); // connection id -> what it waits for
function fail(message) {
  if (finished) return;
  out({ step: 'error', message: String(message), handled, in_progress: [...inProgress.values()] });
  finished = true;
  process.exit(1);
}
function done() {
  if (finished) return;
  out({ step: 'done', calls: handled });
  finished = true;
  process.exit(0);
}
process.on('uncaughtException', (e) => fail('uncaught exception (modesl cannot handle what it received?): ' + (e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e)));
setTimeout(() => {
  if (calls > 0) fail(`timed out after ${timeoutMs} ms with ${handled} of ${calls} calls handled`);
  else done();
}, timeoutMs);

const state = new WeakMap(); // modesl Connection -> { sock, hangupSent }

// --wire: modesl writes `connect` inside the Connection constructor
// (Connection.js:87), before any event of the Server's reaches us, so the
// socket is tapped as the Server receives it. Diagnosis only.
if (opts.wire) {
  const onConnection = esl.Server.prototype._onConnection;
  esl.Server.prototype._onConnection = function (sock) {
    const id = `${sock.remoteAddress}:${sock.remotePort}`;
    const write = sock.write.bind(sock);
    let pending = '';
    sock.write = (data, ...rest) => {
      pending += String(data);
      if (pending.endsWith('\n\n')) {
        out({ step: 'wire', conn: id, dir: 'app>fs', text: pending });
        pending = '';
      }
      return write(data, ...rest);
    };
    sock.on('data', (d) => out({ step: 'wire', conn: id, dir: 'fs>app', text: d.toString('utf8') }));
    return onConnection.call(this, sock);
  };
}

// ---- the server ----
// modesl's Server listens itself on opts.port ("opts.port || 8022", so it
// cannot take port 0); for --port 0 it is handed a listening net.Server
// instead, which it also supports (opts.server).
function start(cb) {
  if (port !== 0) {
    const server = new esl.Server({ port, host: '127.0.0.1', myevents: true }, () => cb(server, port));
    server.server.on('error', (e) => fail(`cannot listen on 127.0.0.1:${port}: ${e.message}`));
    return server;
  }
  const ns = net.createServer();
  ns.on('error', (e) => fail(`cannot listen on 127.0.0.1:0: ${e.message}`));
  ns.listen(0, '127.0.0.1', () => {
    const server = new esl.Server({ server: ns, myevents: true }, () => cb(server, ns.address().port));
    serve(server);
  });
  return null;
}

const s = start((server, p) => out({ step: 'listening', port: p }));
if (s) serve(s);

function serve(server) {
  server.on('connection::open', (conn, id) => {
    inProgress.set(id, 'the connect reply (channel data) and the replies to event json / myevents');
    const st = { sock: conn.socket, hangupSent: false }; // modesl drops its socket reference at the end
    state.set(conn, st);
    conn.on('error', (e) => {
      // After the hang-up was sent a reset is just the end of the call
      // (modesl only knows 'end', Connection.js:101-104): 'close' follows.
      if (!st.hangupSent) fail(`call ${id}: socket error: ${e.message || e}`);
    });
    conn.on('esl::end', () => {
      if (inProgress.has(id)) fail(`call ${id}: FreeSWITCH closed the socket while the app waited for ${inProgress.get(id)}`);
    });
  });
  server.on('connection::ready', (conn, id) => handle(conn, id));
}

function handle(conn, id) {
  const info = conn.getInfo();
  if (!info) return fail(`call ${id}: modesl has no channel data: the connect reply lacked Event-Name: CHANNEL_DATA`);
  const uuid = info.getHeader('Unique-ID');
  out({
    step: 'connect',
    uuid,
    caller: info.getHeader('Caller-Caller-ID-Number'),
    caller_name: info.getHeader('Caller-Caller-ID-Name'),
    destination: info.getHeader('Caller-Destination-Number'),
    socket_mode: info.getHeader('Socket-Mode'),
    control: info.getHeader('Control'),
  });
  if (!uuid) return fail(`call ${id}: the channel data has no Unique-ID (modesl's execute needs it for sendmsg <uuid>)`);

  // Which frame type carried each CHANNEL_EXECUTE_COMPLETE (text/event-plain
  // or -json). modesl names the event esl::event::CHANNEL_EXECUTE_COMPLETE::<Unique-ID>
  // (Connection.js:788) and its execute waits on that exact name
  // (Connection.js:702-713); registered on the same name before any execute,
  // this listener runs before modesl's.
  let lastFormat = null;
  conn.on('esl::event::CHANNEL_EXECUTE_COMPLETE::' + uuid, (evt, headers) => { lastFormat = headers && headers['Content-Type']; });
  conn.on('esl::event::disconnect::notice', (evt) => out({ step: 'disconnect_notice', uuid, disposition: evt.getHeader('Content-Disposition') }));

  const executed = (evt) => out({
    step: 'executed',
    uuid,
    app: evt.getHeader('Application'),
    response: evt.getHeader('Application-Response'),
    format: lastFormat,
  });

  inProgress.set(id, `CHANNEL_EXECUTE_COMPLETE of answer on ${uuid}`);
  conn.execute('answer', (evt) => {
    executed(evt);
    inProgress.set(id, `CHANNEL_EXECUTE_COMPLETE of playback ${opts.playback} on ${uuid}`);
    conn.execute('playback', opts.playback, (evt2) => {
      executed(evt2);
      // The hang-up's own CHANNEL_EXECUTE_COMPLETE may never come: FreeSWITCH
      // drops the socket once the channel is down (no linger). The end of the
      // socket is the signal.
      inProgress.delete(id);
      let ended = false;
      const hungup = () => {
        if (ended) return;
        ended = true;
        out({ step: 'hungup', uuid });
        handled++;
        if (calls > 0 && handled >= calls) done();
      };
      conn.on('esl::end', hungup);
      const st = state.get(conn);
      st.sock.on('close', hungup); // also without a FIN (a reset)
      st.hangupSent = true;
      conn.execute('hangup', 'NORMAL_CLEARING');
    });
  });
}
