package main

import (
	"io"
	"slices"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	tests := []struct{ in, want []string }{
		{[]string{"crs-ci", "check", "img", "--format", "json", "--no-cache"},
			[]string{"crs-ci", "check", "--format", "json", "--no-cache", "img"}},
		{[]string{"crs-ci", "check", "--format=json", "img", "--report", "json=a.json", "--allow-unhookable-entrypoint"},
			[]string{"crs-ci", "check", "--format=json", "--report", "json=a.json", "--allow-unhookable-entrypoint", "img"}},
		{[]string{"crs-ci", "check", "img", "--", "--format"}, []string{"crs-ci", "check", "img", "--", "--format"}},
		{[]string{"crs-ci", "check", "-", "--no-cache"}, []string{"crs-ci", "check", "--no-cache", "-"}},
		{[]string{"crs-ci", "version"}, []string{"crs-ci", "version"}},
		{[]string{"crs-ci", "check", "img", "--bogus", "--no-cache"}, []string{"crs-ci", "check", "--no-cache", "img", "--bogus"}},
		{[]string{"crs-ci", "policy", "compile", "p.yaml", "-o", "out", "--fast"},
			[]string{"crs-ci", "policy", "compile", "-o", "out", "p.yaml", "--fast"}},
		{[]string{"crs-ci"}, []string{"crs-ci"}},
		{[]string{"crs-ci", "nosuch", "x", "--y"}, []string{"crs-ci", "nosuch", "x", "--y"}},
	}
	for _, tt := range tests {
		if got := permuteArgs(app, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("permuteArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
