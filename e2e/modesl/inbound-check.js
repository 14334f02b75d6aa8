#!/usr/bin/env node
// Drives a FreeSWITCH (or fssim) event socket with modesl's inbound
// Connection and prints one JSON line per step, for the e2e fidelity test.
//
// usage: node inbound-check.js --host H --port P --password PW [--originate DIALSTRING] [--timeout-ms N]
'use strict';
const esl = require('modesl');

function opt(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
}
const host = opt('--host', '127.0.0.1');
const port = Number(opt('--port', '8021'));
const password = opt('--password', 'ClueCon');
// The channel-variable syntax of the originate backend (seed 001).
const dial = opt('--originate', '{origination_caller_id_number=+441234567890,origination_caller_id_name=Alice,ignore_early_media=true}loopback/agent-1/agents');
const timeout = Number(opt('--timeout-ms', '10000'));

const out = (o) => console.log(JSON.stringify(o));
const fail = (message) => { out({ step: 'error', message: String(message) }); process.exit(1); };
setTimeout(() => fail('timed out'), timeout).unref();

function wrongPassword(next) {
  const c = new esl.Connection(host, port, 'not-' + password);
  c.on('error', () => {});
  c.on('esl::event::auth::fail', () => { out({ step: 'auth_wrong_password', ok: false }); next(); });
  c.on('esl::ready', () => fail('a wrong password was accepted'));
}

wrongPassword(() => {
  const conn = new esl.Connection(host, port, password, () => {
    out({ step: 'auth', ok: true });
    conn.api('status', (res) => {
      out({ step: 'api', cmd: 'status', body: res.getBody() });
      const seen = new Set();
      conn.events('plain', 'CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_HANGUP', () => {
        conn.on('esl::event::**', (evt) => {
          const name = evt.getHeader('Event-Name');
          if (!['CHANNEL_CREATE', 'CHANNEL_ANSWER', 'CHANNEL_HANGUP'].includes(name)) return;
          const uuid = evt.getHeader('Unique-ID');
          out({ step: 'event', name, uuid });
          seen.add(name + ':' + uuid);
        });
        conn.bgapi('originate', dial + ' &park()', (job) => {
          const body = job.getBody();
          out({ step: 'bgapi', job_uuid: job.getHeader('Job-UUID'), body });
          const m = /^\+OK ([0-9a-f-]{36})/.exec(body);
          if (!m) fail('bgapi originate failed: ' + body);
          conn.api('originate', 'user/nobody &park()', (res) => {
            out({ step: 'api', cmd: 'originate user/nobody', body: res.getBody() });
            conn.api('uuid_kill', m[1], (kill) => {
              out({ step: 'api', cmd: 'uuid_kill', body: kill.getBody() });
              const wait = setInterval(() => {
                if (seen.has('CHANNEL_HANGUP:' + m[1])) {
                  clearInterval(wait);
                  out({ step: 'done' });
                  conn.disconnect();
                  process.exit(0);
                }
              }, 10);
            });
          });
        });
      });
    });
  });
  conn.on('error', (e) => fail(e.message || e));
});
