#!/usr/bin/env node
// Drives a FreeSWITCH (or fssim) event socket with modesl's inbound
// Connection, using only modesl's own mechanisms (auth on auth/request,
// FIFO api callbacks, bgapi Job-UUID correlation, wildcard event names), and
// prints one JSON line per step for the e2e fidelity test to assert on.
//
// usage: node inbound-check.js --host H --port P --password PW
//          [--originate 'DIALSTRING [&app()]'] [--api-originate 'DIALSTRING [&app()]']
//          [--format plain|json] [--timeout-ms N] [--wire]
//
// Steps, in order (one JSON object per stdout line):
//   {"step":"auth_wrong_password","ok":false,"reply":"-ERR invalid","disconnect_notice":true,"closed":true}
//   {"step":"auth","ok":true}
//   {"step":"api","cmd":"status","body":"UP 0 years, ..."}
//   {"step":"events","format":"plain","reply":"+OK event listener enabled plain"}
//   {"step":"bgapi","cmd":"originate <dial>","reply":"+OK Job-UUID: <id>","job_uuid":"<id>","body":"+OK <uuid>\n"}
//   {"step":"api","cmd":"originate user/nobody","body":"-ERR SUBSCRIBER_ABSENT\n"}
//   {"step":"api","cmd":"uuid_kill","uuid":"<uuid>","body":"+OK\n"}      (per call that came up)
//   {"step":"event","name":"CHANNEL_CREATE","uuid":"<Unique-ID>","format":"text/event-plain"}  (as they come)
//   {"step":"done"}                                                      exit 0
//   {"step":"error","message":"...","waiting_for":"..."}                 exit 1, on any failure
// Nothing is printed after done or error. A disconnect notice on the main
// connection is reported as {"step":"disconnect_notice","body":".."}.
// --wire adds {"step":"wire","conn":"main"|"wrong-password","dir":"app>fs"|"fs>app","text":"..."}.
'use strict';
const esl = require('modesl');

// ---- arguments ----
const USAGE = "usage: node inbound-check.js --host H --port P --password PW [--originate 'DIAL'] [--api-originate 'DIAL'] [--format plain|json] [--timeout-ms N] [--wire]";
const opts = {
  host: '127.0.0.1',
  port: '8021',
  password: 'ClueCon',
  // The originate backend's channel-variable syntax. The default destination
  // is one the simulator's default dialplan answers (context agents: agent-*
  // answers and parks); against a real FreeSWITCH pass --originate.
  originate: '{origination_caller_id_number=+441234567890,origination_caller_id_name=Alice,ignore_early_media=true}loopback/agent-1/agents',
  'api-originate': 'user/nobody',
  format: 'plain',
  'timeout-ms': '10000',
  wire: false,
};
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
const host = opts.host;
const port = Number(opts.port);
const password = opts.password;
const timeoutMs = Number(opts['timeout-ms']);
const format = opts.format;
if (!(port > 0 && port < 65536)) usage('--port must be a TCP port');
if (!(timeoutMs > 0)) usage('--timeout-ms must be positive');
if (format !== 'plain' && format !== 'json') usage('--format is plain or json');

// An originate argument is "<dial string> <app>"; with no application given,
// park the call (as the originate backend does).
const withApp = (dial) => (/\s&?\S+\s*$/.test(dial.replace(/^\{[^}]*\}/, '').trim()) ? dial : dial + ' &park()');
const label = (dial) => 'originate ' + dial.replace(/\s+&\S.*$/, '');

// ---- output ----
let finished = false; // done or error printed: nothing more is reported
let waitingFor = 'the connection';
const out = (o) => { if (!finished) process.stdout.write(JSON.stringify(o) + '\n'); };
function fail(message) {
  if (finished) return;
  out({ step: 'error', message: String(message), waiting_for: waitingFor });
  finished = true;
  process.exit(1);
}
process.on('uncaughtException', (e) => fail('uncaught exception (modesl cannot handle what it received?): ' + (e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e)));
const deadline = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);

// Taps a Connection's socket: what modesl writes (kept for diagnosis, and
// printed with --wire) and what it reads (printed with --wire).
function tap(conn, tag) {
  const sock = conn.socket;
  const sent = [];
  let pending = '';
  const write = sock.write.bind(sock);
  sock.write = (data, ...rest) => {
    const s = String(data);
    sent.push(s);
    if (opts.wire) {
      pending += s;
      if (pending.endsWith('\n\n')) {
        out({ step: 'wire', conn: tag, dir: 'app>fs', text: pending });
        pending = '';
      }
    }
    return write(data, ...rest);
  };
  if (opts.wire) sock.on('data', (d) => out({ step: 'wire', conn: tag, dir: 'fs>app', text: d.toString('utf8') }));
  return { sock, sentText: () => sent.join('') };
}

// ---- 1. a wrong password ----
function wrongPassword(next) {
  waitingFor = 'the answer to a wrong password';
  const c = new esl.Connection(host, port, 'not-' + password);
  const { sock } = tap(c, 'wrong-password');
  let reply = null, notice = false, reported = false;
  const report = (closed) => {
    if (reported) return;
    reported = true;
    out({ step: 'auth_wrong_password', ok: false, reply, disconnect_notice: notice, closed });
    if (!closed) sock.destroy();
    next();
  };
  c.on('error', (e) => {
    if (reply === null) fail('wrong-password connection: ' + (e.message || e));
  });
  c.on('esl::ready', () => fail('a wrong password was accepted'));
  c.on('esl::event::auth::fail', (evt) => {
    reply = evt.getHeader('Reply-Text');
    // FreeSWITCH follows -ERR invalid with a disconnect notice and closes.
    setTimeout(() => report(false), 2000);
  });
  c.on('esl::event::disconnect::notice', () => { notice = true; });
  sock.on('close', () => {
    if (reply === null) fail('the event socket closed without answering a wrong password');
    else report(true);
  });
}

// ---- 2. the real session ----
function session() {
  waitingFor = 'auth/request and the answer to auth';
  const wanted = new Set(['CHANNEL_CREATE', 'CHANNEL_ANSWER', 'CHANNEL_HANGUP']);
  const seen = new Set(); // NAME:uuid
  const up = [];          // uuids of calls that came up, to kill
  let onSeen = () => {};

  const conn = new esl.Connection(host, port, password, ready);
  const wire = tap(conn, 'main');
  conn.on('error', (e) => fail('connection error: ' + (e.message || e)));
  conn.on('esl::event::auth::fail', (evt) => fail('auth refused: ' + evt.getHeader('Reply-Text')));
  conn.on('esl::end', () => fail('the event socket closed the connection'));
  conn.on('esl::event::disconnect::notice', (evt) => out({ step: 'disconnect_notice', body: evt.getBody() }));

  // Every event frame modesl dispatches, whatever name it gave it
  // (esl::event::<Event-Name>::<Job-UUID|Unique-ID|Core-UUID>).
  conn.on('esl::event::**', (evt, headers) => {
    if (!headers || !/^text\/event-/.test(headers['Content-Type'] || '')) return;
    const name = evt.getHeader('Event-Name');
    if (!wanted.has(name)) return;
    const uuid = evt.getHeader('Unique-ID');
    out({ step: 'event', name, uuid, format: headers['Content-Type'] });
    seen.add(name + ':' + uuid);
    onSeen();
  });

  function ready() {
    out({ step: 'auth', ok: true });
    waitingFor = 'the api/response to api status';
    conn.api('status', (res) => {
      out({ step: 'api', cmd: 'status', body: res.getBody() });
      waitingFor = `the command/reply to event ${format} ...`;
      conn.events(format, [...wanted].join(' '), (reply) => {
        out({ step: 'events', format, reply: reply.getHeader('Reply-Text') });
        bgOriginate();
      });
    });
  }

  function bgOriginate() {
    const arg = withApp(opts.originate);
    const cmd = label(opts.originate);
    let reply = null;
    // Nothing else is outstanding now: the next command/reply answers bgapi.
    conn.once('esl::event::command::reply', (r) => { reply = r.getHeader('Reply-Text'); });
    const before = wire.sentText().length;
    waitingFor = 'the BACKGROUND_JOB of bgapi originate';
    // Says which Job-UUID modesl sent if the result never reaches its callback.
    const stray = function (evt) {
      const sentId = (/\nJob-UUID: ([^\n]*)\n/.exec(wire.sentText().slice(before)) || [])[1];
      const got = evt.getHeader('Job-UUID');
      if (sentId && got !== sentId) {
        waitingFor = `the BACKGROUND_JOB for Job-UUID ${sentId} (modesl's); one came for Job-UUID ${got}`;
      }
    };
    conn.on('esl::event::BACKGROUND_JOB::**', stray);
    conn.bgapi('originate', arg, (job) => {
      conn.removeListener('esl::event::BACKGROUND_JOB::**', stray);
      const body = job.getBody();
      out({ step: 'bgapi', cmd, reply, job_uuid: job.getHeader('Job-UUID'), body });
      const m = /^\+OK ([0-9a-fA-F-]{36})/.exec(body);
      if (m) up.push(m[1]);
      apiOriginate();
    });
  }

  function apiOriginate() {
    const cmd = label(opts['api-originate']);
    waitingFor = 'the api/response to api ' + cmd;
    conn.api('originate', withApp(opts['api-originate']), (res) => {
      const body = res.getBody();
      out({ step: 'api', cmd, body });
      const m = /^\+OK ([0-9a-fA-F-]{36})/.exec(body);
      if (m) up.push(m[1]);
      killNext();
    });
  }

  function killNext() {
    const uuid = up.shift();
    if (!uuid) return finish();
    waitingFor = 'the api/response to api uuid_kill ' + uuid;
    conn.api('uuid_kill', uuid, (res) => {
      out({ step: 'api', cmd: 'uuid_kill', uuid, body: res.getBody() });
      waitingFor = `CHANNEL_CREATE, CHANNEL_ANSWER and CHANNEL_HANGUP for ${uuid}`;
      onSeen = () => {
        if ([...wanted].every((n) => seen.has(n + ':' + uuid))) {
          onSeen = () => {};
          killNext();
        }
      };
      onSeen();
    });
  }

  function finish() {
    clearTimeout(deadline);
    out({ step: 'done' });
    finished = true;
    const sock = wire.sock;
    sock.on('close', () => process.exit(0));
    conn.disconnect(); // sends exit, then ends the socket
    setTimeout(() => process.exit(0), 500).unref();
  }
}

wrongPassword(session);
