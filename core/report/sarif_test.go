package report

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestSARIF(t *testing.T) {
	r := &Report{
		Command: "check", Image: "registry.example/app:1", Verdict: Invalid,
		Policies: []PolicyFile{{File: "policies/web.yaml", Verdict: Invalid, Findings: []Finding{
			{Code: "unknown-key", Severity: Error, Message: `unknown key "acess"`, File: "policies/web.yaml", Line: 12, Column: 7, Hint: `did you mean "access"?`},
			{Code: "shadowed-rule", Severity: Warning, Message: "rule b is never used", File: "policies/web.yaml", Line: 20, Column: 7},
		}}},
		Platforms: []Platform{{Platform: "linux/amd64", Verdict: Incompatible, Findings: []Finding{
			{Code: "static-entrypoint", Severity: Error, Message: "entrypoint is static", Path: "/app"},
			{Code: "info-thing", Severity: Info, Message: "fyi"},
		}}},
	}
	var buf bytes.Buffer
	if err := Render(&buf, "sarif", r); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID   string `json:"id"`
						Conf struct {
							Level string `json:"level"`
						} `json:"defaultConfiguration"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID  string `json:"ruleId"`
				Level   string `json:"level"`
				Message struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					Physical *struct {
						Artifact struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region *struct {
							StartLine   int `json:"startLine"`
							StartColumn int `json:"startColumn"`
						} `json:"region"`
					} `json:"physicalLocation"`
					Logical []struct {
						Name string `json:"fullyQualifiedName"`
					} `json:"logicalLocations"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatalf("sarif is not JSON: %v\n%s", err, buf.String())
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "crs-ci" {
		t.Fatalf("bad envelope: %s", buf.String())
	}
	run := log.Runs[0]
	if len(run.Results) != 4 {
		t.Fatalf("want 4 results, got %d", len(run.Results))
	}
	tests := []struct {
		i                 int
		rule, level, uri  string
		line, col         int
		logical, inMessag string
	}{
		{0, "unknown-key", "error", "policies/web.yaml", 12, 7, "", `did you mean "access"?`},
		{1, "shadowed-rule", "warning", "policies/web.yaml", 20, 7, "", "never used"},
		{2, "static-entrypoint", "error", "registry.example/app:1", 0, 0, "/app", "[linux/amd64]"},
		{3, "info-thing", "note", "registry.example/app:1", 0, 0, "", "fyi"},
	}
	for _, tt := range tests {
		res := run.Results[tt.i]
		if res.RuleID != tt.rule || res.Level != tt.level {
			t.Errorf("result %d: got %s/%s, want %s/%s", tt.i, res.RuleID, res.Level, tt.rule, tt.level)
		}
		if !bytes.Contains([]byte(res.Message.Text), []byte(tt.inMessag)) {
			t.Errorf("result %d: message %q lacks %q", tt.i, res.Message.Text, tt.inMessag)
		}
		loc := res.Locations[0]
		if loc.Physical == nil || loc.Physical.Artifact.URI != tt.uri {
			t.Errorf("result %d: artifact location %+v, want %s", tt.i, loc.Physical, tt.uri)
			continue
		}
		if tt.line > 0 && (loc.Physical.Region == nil || loc.Physical.Region.StartLine != tt.line || loc.Physical.Region.StartColumn != tt.col) {
			t.Errorf("result %d: region %+v, want %d:%d", tt.i, loc.Physical.Region, tt.line, tt.col)
		}
		if tt.logical != "" && (len(loc.Logical) != 1 || loc.Logical[0].Name != tt.logical) {
			t.Errorf("result %d: logical locations %+v, want %s", tt.i, loc.Logical, tt.logical)
		}
	}
	if len(run.Tool.Driver.Rules) != 4 {
		t.Errorf("want 4 rules (one per code), got %+v", run.Tool.Driver.Rules)
	}
}
