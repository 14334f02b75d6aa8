// Package esl speaks FreeSWITCH's Event Socket Layer: the frame codec, an
// inbound client (the application dials FreeSWITCH's mod_event_socket) and an
// outbound server (FreeSWITCH's dialplan `socket` application dials us).
//
// The codec is written for the gateway's hot path. A Reader owns one read
// buffer; every frame it hands up owns exactly one copy of its bytes, and
// header names and values are strings over that copy, so decoding an event
// costs a handful of allocations regardless of how many headers it carries.
// Header names keep FreeSWITCH's spelling (Unique-ID, not Unique-Id): looking
// a header up never canonicalises it.
//
// Every length that arrives from the network is bounded by Limits. A frame
// that breaks a limit, or that cannot be framed at all, yields a *FrameError;
// the stream cannot be trusted after that, so callers close that one
// connection. A frame that is well delimited but whose event body does not
// parse is still handed up, with the parse error kept on the Message, so one
// bad event never costs the connection.
//
// We wrote this codec ourselves because no Go ESL library can be had through
// the module proxy here (see docs/decisions/esl-codec.md).
package esl
