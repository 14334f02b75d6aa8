package luaapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/dryrun"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

func runPolicy(t *testing.T, src string, s *dryrun.Script) dryrun.Result {
	t.Helper()
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	return dryrun.Run(context.Background(), sb, "t", src, dryrun.Options{}, s)
}

func TestCallAPI(t *testing.T) {
	src := `
assert(call.uuid == "u-1" and call.caller_id_number == "+44" and call.destination_number == "8084")
assert(call.variables.team == "blue")
call.answer()
call.set("color", "red")
assert(call.get("color") == "red" and call.get("missing") == nil)
assert(call.playback("hello.wav") == "FILE PLAYED")
call.say{text = "42"}
call.sleep(250)
assert(call.record("/tmp/r.wav", 10) == "5000")
assert(call.execute("info") == "_none_")
local r = call.bridge("user/1000")
assert(r.hangup_cause == "NORMAL_CLEARING")
local doc = json.decode('{"tier":"VIP","scores":[1,2]}')
assert(doc.tier == "VIP" and doc.scores[2] == 2)
assert(json.encode({a = "b"}) == '{"a":"b"}')
assert(call.ready())
call.hangup("USER_BUSY")
assert(not call.ready())`
	res := runPolicy(t, src, &dryrun.Script{Call: callData()})
	if res.Err != nil {
		t.Fatalf("%v\n%v", res.Err, res.Trace)
	}
	want := "answer|playback hello.wav|say en number pronounced 42|sleep 250|record /tmp/r.wav 10|info|bridge user/1000|hangup USER_BUSY"
	if got := strings.Join(res.Trace, "|"); got != want {
		t.Fatalf("trace\n got %s\nwant %s", got, want)
	}
}

func callData() luaapi.Call {
	return luaapi.Call{CallID: "u-1", CallerIDNumber: "+44", DestinationNumber: "8084", Variables: map[string]string{"team": "blue"}}
}

// Services not built yet answer with a clear, catchable error.
func TestNotAvailableServices(t *testing.T) {
	for _, fn := range []string{"queue.enqueue('sales', {})", "connector.query({connector = 'salesforce'})", "freeswitch.API():execute('status')"} {
		res := runPolicy(t, "return "+fn, &dryrun.Script{})
		if res.Err == nil || !strings.Contains(res.Err.Error(), "not available") {
			t.Errorf("%s: %v", fn, res.Err)
		}
	}
	res := runPolicy(t, `local ok, err = pcall(queue.enqueue, "sales") assert(not ok) return err`, &dryrun.Script{})
	if res.Err != nil {
		t.Fatalf("pcall could not catch it: %v", res.Err)
	}
}

// Calls after the caller hung up fail, so a policy stops instead of
// talking to nobody.
func TestHungUpCallFails(t *testing.T) {
	res := runPolicy(t, `call.answer() call.playback("a.wav") call.playback("b.wav")`, &dryrun.Script{HangupAfter: 1})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "hung up") {
		t.Fatalf("%v %v", res.Err, res.Trace)
	}
}
