package serve

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// EventsMediaType is the Content-Type of the distribution registry's notification envelopes.
const EventsMediaType = "application/vnd.docker.distribution.events.v1+json"

// Envelope is the body of one notification request of the distribution registry (CNCF distribution 2.x,
// docs "Work with notifications"): one or more events.
type Envelope struct {
	Events []Event `json:"events"`
}

// Event is one registry event. Only the fields crs-ci reads are declared.
type Event struct {
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	Action    string    `json:"action"` // push, pull, mount, delete
	Target    struct {
		MediaType  string `json:"mediaType"`
		Size       int64  `json:"size"`
		Digest     string `json:"digest"`
		Repository string `json:"repository"`
		URL        string `json:"url"`
		Tag        string `json:"tag"`
	} `json:"target"`
	Request struct {
		Host      string `json:"host"`
		UserAgent string `json:"useragent"`
	} `json:"request"`
	Actor struct {
		Name string `json:"name"`
	} `json:"actor"`
}

// manifestTypes are the media types of manifests and indexes (events for blobs are not pushes of a tag).
var manifestTypes = map[string]bool{
	"application/vnd.oci.image.manifest.v1+json":                true,
	"application/vnd.oci.image.index.v1+json":                   true,
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
}

// ParseEnvelope decodes a notification body.
func ParseEnvelope(body []byte) (*Envelope, error) {
	var env struct {
		Events *[]Event `json:"events"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("decoding the notification envelope: %w", err)
	}
	if env.Events == nil {
		return nil, fmt.Errorf("not a distribution notification envelope (no \"events\" list); only the distribution registry's notifications are understood")
	}
	return &Envelope{Events: *env.Events}, nil
}

// Decision is what the service makes of one event.
type Decision struct {
	Job    *Job   // the job to run, when the event selects one
	Reason string // why it was ignored (for logs and metrics), when Job is nil
}

// Ignore reasons (label values of crs_serve_events_total).
const (
	IgnoreNotPush     = "not-a-push"
	IgnoreNotManifest = "not-a-manifest"
	IgnoreNoTag       = "no-tag"
	IgnoreOwnOutput   = "own-output"
	IgnoreNoRule      = "no-matching-rule"
	IgnoreBadEvent    = "malformed"
)

// Decide turns an event into a job, or says why not. It never instruments crs-ci's own output: a tag ending
// with the suffix a target template adds (checked here), or an image carrying crs-ci's labels (checked by
// the job before anything is pulled or pushed).
func (c *Config) Decide(e Event) Decision {
	t := e.Target
	switch {
	case e.Action != "push":
		return Decision{Reason: IgnoreNotPush}
	case !manifestTypes[t.MediaType]:
		return Decision{Reason: IgnoreNotManifest}
	case t.Tag == "":
		return Decision{Reason: IgnoreNoTag} // manifests pushed by digest (an index's children) have no tag
	case t.Repository == "" || !strings.HasPrefix(t.Digest, "sha256:") || len(t.Digest) != 71:
		return Decision{Reason: IgnoreBadEvent}
	}
	for _, r := range c.Repositories {
		if s := OwnSuffix(r.Target); s != "" && strings.HasSuffix(t.Tag, s) {
			return Decision{Reason: IgnoreOwnOutput}
		}
	}
	r := c.Rule(t.Repository, t.Tag)
	if r == nil {
		return Decision{Reason: IgnoreNoRule}
	}
	j := &Job{
		Repository: t.Repository, Tag: t.Tag, Digest: t.Digest, MediaType: t.MediaType,
		Target: c.TargetFor(r, t.Repository, t.Tag), EventID: e.ID,
		AllowUnhookableEntrypoint: r.AllowUnhookableEntrypoint, SkipIncompatiblePlatforms: r.SkipIncompatiblePlatforms,
	}
	j.Key = j.Repository + ":" + j.Tag + "@" + j.Digest
	return Decision{Job: j}
}
