package matrix

import (
	"strings"
	"testing"
)

// TestJudge checks the matrix's own judgement on crafted outcomes: what counts as loaded and enforced, so
// that a weakened criterion cannot make the matrix agree by accident.
func TestJudge(t *testing.T) {
	const pol = "abc123"
	good := func() map[string]step {
		return map[string]step{
			"maps":           {Rc: 0, Out: "probe=yes"},
			"read-denied":    {Rc: 1, Out: "/bin/cat: /srv/secret/key: Permission denied"},
			"exec-denied":    {Rc: 126, Out: "/bin/sh: 1: id: Operation not permitted"},
			"connect-denied": {Rc: 1, Out: "/bin/bash: connect: Operation not permitted"},
			"alert-read":     {Rc: 0, Out: public},
			"tree":           {Rc: 1, Out: "/bin/cat: /srv/secret/key: Permission denied"},
		}
	}
	events := func() []event {
		return []event{
			{PID: 10, Action: "deny", Rule: "no-secrets", Mode: "enforce", Policy: pol},
			{PID: 11, Action: "deny", Rule: "no-id", Mode: "enforce", Policy: pol},
			{PID: 12, Action: "deny", Rule: "no-smtp", Mode: "enforce", Policy: pol},
			{PID: 13, Action: "alert", Rule: "watch-public", Mode: "enforce", Policy: pol},
			{PID: 14, Action: "deny", Rule: "no-secrets", Mode: "enforce", Policy: pol},
		}
	}
	tests := []struct {
		name             string
		edit             func(o *outcome)
		loaded, enforced bool
		missing          string // substring of the reasons, when not enforced
	}{
		{"everything as the policy says", func(o *outcome) {}, true, true, ""},
		{"not started", func(o *outcome) { o.Started = false }, false, false, ""},
		{"probe not mapped", func(o *outcome) { o.Steps["maps"] = step{Out: "probe=no"} }, false, true, ""},
		{"maps unreadable, events tell", func(o *outcome) { o.Steps["maps"] = step{Out: "probe=unknown"} }, true, true, ""},
		{"maps unreadable, events of another policy", func(o *outcome) {
			o.Steps["maps"] = step{Out: "probe=unknown"}
			for i := range o.Events {
				o.Events[i].Policy = "other"
			}
		}, false, false, "deny events of no-secrets"},
		{"secret read", func(o *outcome) { o.Steps["read-denied"] = step{Rc: 0, Out: secret} }, true, false, "read-denied"},
		{"id ran", func(o *outcome) { o.Steps["exec-denied"] = step{Rc: 0, Out: "uid=0(root)"} }, true, false, "exec-denied"},
		{"connect failed for another reason", func(o *outcome) {
			o.Steps["connect-denied"] = step{Rc: 1, Out: "connect: Network is unreachable"}
		}, true, false, "connect-denied"},
		{"Go's lower-case EPERM", func(o *outcome) {
			o.Steps["connect-denied"] = step{Rc: 1, Out: "dial tcp 127.0.0.1:25: connect: operation not permitted"}
		}, true, true, ""},
		{"allowed read broken", func(o *outcome) { o.Steps["alert-read"] = step{Rc: 1, Out: "Permission denied"} }, true, false, "alert-read"},
		{"tree leaf read the secret", func(o *outcome) { o.Steps["tree"] = step{Rc: 0, Out: secret} }, true, false, "tree"},
		{"a step missing", func(o *outcome) { delete(o.Steps, "tree") }, true, false, "step tree did not run"},
		{"one deny event only", func(o *outcome) { o.Events = o.Events[:4] }, true, false, "from 1 processes"},
		{"audit-mode events", func(o *outcome) {
			for i := range o.Events {
				o.Events[i].Mode = "audit"
			}
		}, true, false, "no deny event of rule no-id"},
		{"no alert event", func(o *outcome) { o.Events = append(o.Events[:3], o.Events[4]) }, true, false, "no alert event of rule watch-public"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := outcome{Started: true, Steps: good(), Events: events()}
			tc.edit(&o)
			o.judge(pol)
			if o.Loaded != tc.loaded || o.Enforced != tc.enforced {
				t.Errorf("loaded %v enforced %v, want %v %v; missing: %v", o.Loaded, o.Enforced, tc.loaded, tc.enforced, o.Missing)
			}
			if tc.missing != "" && !strings.Contains(strings.Join(o.Missing, "\n"), tc.missing) {
				t.Errorf("missing %q, want a reason containing %q", o.Missing, tc.missing)
			}
		})
	}
}
