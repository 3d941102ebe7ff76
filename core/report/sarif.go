package report

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/crs-ci/crs-ci/core/version"
)

func init() { Register("sarif", renderSARIF) }

// SARIF 2.1.0 (OASIS), the subset code-scanning services read: one run, the tool's rules (one per finding
// code), and results with a level, a message and a location. Policy findings point at the policy file with
// a line/column region; image findings point at the image reference, with the path inside the image as a
// logical location.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool           `json:"executionSuccessful"`
	Properties          map[string]any `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string        `json:"id"`
	ShortDescription     sarifText     `json:"shortDescription"`
	DefaultConfiguration sarifRuleConf `json:"defaultConfiguration"`
}

type sarifRuleConf struct {
	Level string `json:"level"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

type sarifLogical struct {
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

func sarifLevel(sev string) string {
	switch sev {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "note"
}

func sarifMessage(f Finding) string {
	if f.Hint != "" {
		return fmt.Sprintf("%s (hint: %s)", f.Message, f.Hint)
	}
	return f.Message
}

func renderSARIF(w io.Writer, r *Report) error {
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{
			Name:           "crs-ci",
			InformationURI: "https://github.com/crs-ci/crs-ci",
			Version:        version.Version,
		}},
		Invocations: []sarifInvocation{{ExecutionSuccessful: true, Properties: map[string]any{"command": r.Command, "verdict": r.Verdict}}},
		Results:     []sarifResult{},
	}
	levels := map[string]string{}
	add := func(f Finding, loc sarifLocation) {
		lvl := sarifLevel(f.Severity)
		if prev, ok := levels[f.Code]; !ok || (prev != "error" && lvl == "error") || (prev == "note" && lvl == "warning") {
			levels[f.Code] = lvl
		}
		run.Results = append(run.Results, sarifResult{
			RuleID: f.Code, Level: lvl, Message: sarifText{sarifMessage(f)}, Locations: []sarifLocation{loc},
		})
	}
	for _, p := range r.Policies {
		for _, f := range p.Findings {
			file := f.File
			if file == "" {
				file = p.File
			}
			phys := &sarifPhysical{ArtifactLocation: sarifArtifact{URI: filepath.ToSlash(file)}}
			if f.Line > 0 {
				phys.Region = &sarifRegion{StartLine: f.Line, StartColumn: f.Column}
			}
			add(f, sarifLocation{PhysicalLocation: phys})
		}
	}
	for _, pl := range r.Platforms {
		for _, f := range pl.Findings {
			f.Message = fmt.Sprintf("[%s] %s", pl.Platform, f.Message)
			loc := sarifLocation{}
			if r.Image != "" {
				loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: r.Image}}
			}
			if f.Path != "" {
				loc.LogicalLocations = []sarifLogical{{FullyQualifiedName: f.Path, Kind: "resource"}}
			}
			if f.File != "" {
				phys := &sarifPhysical{ArtifactLocation: sarifArtifact{URI: filepath.ToSlash(f.File)}}
				if f.Line > 0 {
					phys.Region = &sarifRegion{StartLine: f.Line, StartColumn: f.Column}
				}
				loc.PhysicalLocation = phys
			}
			add(f, loc)
		}
	}
	codes := make([]string, 0, len(levels))
	for c := range levels {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: c, ShortDescription: sarifText{strings.ReplaceAll(c, "-", " ")}, DefaultConfiguration: sarifRuleConf{levels[c]},
		})
	}
	if run.Tool.Driver.Rules == nil {
		run.Tool.Driver.Rules = []sarifRule{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{run},
	})
}
