#!/usr/bin/env node
// Serves FreeSWITCH's socket application (outbound ESL) with modesl's
// Server: answers each call, plays a prompt, hangs up, and prints one JSON
// line per step, for the e2e fidelity test.
//
// usage: node outbound-check.js --port P [--calls N] [--timeout-ms N]
'use strict';
const esl = require('modesl');

function opt(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
}
const port = Number(opt('--port', '8084'));
const calls = Number(opt('--calls', '1'));
const timeout = Number(opt('--timeout-ms', '10000'));

const out = (o) => console.log(JSON.stringify(o));
const fail = (message) => { out({ step: 'error', message: String(message) }); process.exit(1); };
setTimeout(() => fail('timed out'), timeout).unref();

let handled = 0;
const server = new esl.Server({ port, host: '127.0.0.1', myevents: true }, () => out({ step: 'listening', port }));
server.on('connection::ready', (conn) => {
  const info = conn.getInfo();
  out({
    step: 'connect', uuid: info.getHeader('Unique-ID'),
    caller: info.getHeader('Caller-Caller-ID-Number'), destination: info.getHeader('Caller-Destination-Number'),
  });
  conn.on('error', (e) => fail(e.message || e));
  conn.execute('answer', (evt) => {
    out({ step: 'executed', app: evt.getHeader('Application'), response: evt.getHeader('Application-Response') });
    conn.execute('playback', 'ivr/ivr-welcome.wav', (evt2) => {
      out({ step: 'executed', app: evt2.getHeader('Application'), response: evt2.getHeader('Application-Response') });
      conn.on('esl::end', () => {
        out({ step: 'hungup' });
        if (++handled === calls) {
          out({ step: 'done', calls: handled });
          process.exit(0);
        }
      });
      conn.execute('hangup', 'NORMAL_CLEARING');
    });
  });
});
