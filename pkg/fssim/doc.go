// Package fssim is a FreeSWITCH simulator that speaks real ESL: an inbound
// event socket (auth, api, bgapi, event subscriptions in plain, json and
// xml, filters, sendmsg, sendevent), channels whose dialplan can run the
// `socket` application against an outbound ESL listener exactly as
// FreeSWITCH does (async or static, full or single-channel, linger,
// socket_resume), simulated agents that answer, reject, ring out or are
// busy, and callers that press digits and hang up when told.
//
// Its bytes follow the real FreeSWITCH transcripts in
// pkg/esl/testdata/transcripts (its tests replay the same exchanges), and
// the independent Node.js client modesl is run against it in e2e. It is
// what tests, the load generator and `make run` use as FreeSWITCH.
//
// Time: every simulated duration (ringing, a playback, an agent's delay) is
// multiplied by Options.TimeScale, so tests run a call in milliseconds and
// demos in seconds.
package fssim
