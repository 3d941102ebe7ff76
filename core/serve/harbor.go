package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Harbor 2.x webhooks (docs/serve.md, "Harbor"). Harbor posts one JSON payload per event to the webhook
// policy's endpoint, with the policy's "Auth Header" value in the Authorization header. Only the "Default"
// payload format is understood (not the CloudEvents one newer Harbor releases can send instead). The
// payload model is Harbor's src/pkg/notifier/model (Payload, EventData, Resource, Repository); only the
// fields crs-ci reads are declared here.

// HarborPushArtifact is the type of the Harbor event sent when an artifact is pushed.
const HarborPushArtifact = "PUSH_ARTIFACT"

// HarborPayload is the body of one Harbor webhook request ("Default" payload format).
type HarborPayload struct {
	Type      string           `json:"type"`     // PUSH_ARTIFACT, PULL_ARTIFACT, DELETE_ARTIFACT, SCANNING_COMPLETED, …
	OccurAt   int64            `json:"occur_at"` // Unix seconds
	Operator  string           `json:"operator"` // the user (or robot account) that caused the event
	EventData *HarborEventData `json:"event_data"`
}

// HarborEventData is a Harbor payload's event_data.
type HarborEventData struct {
	Resources  []HarborResource  `json:"resources"`
	Repository *HarborRepository `json:"repository"`
}

// HarborResource is one artifact of an event: for a push, the digest, the tag pushed and
// resource_url = HOST/PROJECT/REPOSITORY:TAG (or @DIGEST when pushed by digest).
type HarborResource struct {
	Digest      string `json:"digest"`
	Tag         string `json:"tag"`
	ResourceURL string `json:"resource_url"`
}

// HarborRepository is a Harbor payload's event_data.repository: name is the repository inside the
// project (namespace); repo_full_name is PROJECT/NAME, the repository path in the registry.
type HarborRepository struct {
	Name         string `json:"name"`
	Namespace    string `json:"namespace"`
	RepoFullName string `json:"repo_full_name"`
	RepoType     string `json:"repo_type"`
}

// FullName is the repository path in the registry: repo_full_name, or namespace/name when it is missing.
func (r *HarborRepository) FullName() string {
	if r.RepoFullName != "" {
		return r.RepoFullName
	}
	if r.Namespace != "" && r.Name != "" {
		return r.Namespace + "/" + r.Name
	}
	return ""
}

// ParseHarbor decodes a Harbor webhook body. Bodies that are not Harbor "Default" payloads, and push
// events without their repository or resources, are errors (answered 400); events of other types are
// returned as they are (the service ignores them with a 2xx, so Harbor does not retry them).
func ParseHarbor(body []byte) (*HarborPayload, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, fmt.Errorf("decoding the Harbor webhook payload: %w", err)
	}
	if _, ok := probe["specversion"]; ok {
		return nil, fmt.Errorf("a CloudEvents payload: only Harbor's Default payload format is understood (set the webhook policy's payload format to Default)")
	}
	if _, ok := probe["events"]; ok {
		return nil, fmt.Errorf("a distribution notification envelope was posted to the Harbor webhook path: point the distribution registry at webhook.path instead")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var p HarborPayload
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding the Harbor webhook payload: %w", err)
	}
	if p.Type == "" {
		return nil, fmt.Errorf("not a Harbor webhook payload (no \"type\")")
	}
	if p.Type != HarborPushArtifact {
		return &p, nil
	}
	switch {
	case p.EventData == nil:
		return nil, fmt.Errorf("Harbor %s payload without \"event_data\"", p.Type)
	case p.EventData.Repository == nil || p.EventData.Repository.FullName() == "":
		return nil, fmt.Errorf("Harbor %s payload without \"event_data.repository\" (repo_full_name, or namespace and name)", p.Type)
	case len(p.EventData.Resources) == 0:
		return nil, fmt.Errorf("Harbor %s payload without \"event_data.resources\"", p.Type)
	}
	return &p, nil
}

// tagPattern is the OCI distribution spec's tag grammar; Harbor puts the digest in "tag" for an artifact
// pushed by digest, which this rejects.
var tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// SplitResourceURL splits a Harbor resource_url (HOST/REPOSITORY:TAG, or HOST/REPOSITORY@DIGEST for an
// artifact pushed by digest; older Harbor releases wrote HOST/REPOSITORY:DIGEST) into the registry
// host, the repository and the reference. A scheme in front of the host is dropped. A repository name never
// holds ':' or '@', so the first of them after the host ends it.
func SplitResourceURL(u string) (host, repository, ref string, err error) {
	trimmed := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	host, rest, ok := strings.Cut(trimmed, "/")
	if !ok || host == "" || rest == "" {
		return "", "", "", fmt.Errorf("resource_url %q: want HOST/REPOSITORY:TAG or HOST/REPOSITORY@DIGEST", u)
	}
	if i := strings.IndexAny(rest, ":@"); i >= 0 {
		return host, rest[:i], rest[i+1:], nil
	}
	return host, rest, "", nil
}

// HarborEvent is one resource of a Harbor payload turned into what the distribution path works with: the
// repository, tag and digest pushed, and the registry host named by resource_url.
type HarborEvent struct {
	Host, Repository, Tag, Digest, ID string
}

// DecideHarbor turns a Harbor payload into one decision per resource, with the same rules as Decide (own
// output, repository rules, target naming) and the same jobs: a push of REPOSITORY:TAG@DIGEST seen through
// Harbor's webhook and through the distribution notifications is one job. Events other than PUSH_ARTIFACT
// are one IgnoreNotPush decision.
func (c *Config) DecideHarbor(p *HarborPayload) ([]Decision, []HarborEvent) {
	if p.Type != HarborPushArtifact || p.EventData == nil || p.EventData.Repository == nil {
		return []Decision{{Reason: IgnoreNotPush}}, []HarborEvent{{}}
	}
	repo := p.EventData.Repository.FullName()
	var decs []Decision
	var evs []HarborEvent
	for i, r := range p.EventData.Resources {
		ev := HarborEvent{Repository: repo, Tag: r.Tag, Digest: r.Digest,
			ID: "harbor:" + strconv.FormatInt(p.OccurAt, 10) + ":" + p.Operator + ":" + strconv.Itoa(i)}
		evs = append(evs, ev)
		if r.ResourceURL != "" {
			host, urlRepo, _, err := SplitResourceURL(r.ResourceURL)
			if err != nil || urlRepo != repo {
				decs = append(decs, Decision{Reason: IgnoreBadEvent}) // resource_url names another repository
				continue
			}
			evs[len(evs)-1].Host = host
		}
		if r.Tag == "" || r.Tag == r.Digest || !tagPattern.MatchString(r.Tag) {
			decs = append(decs, Decision{Reason: IgnoreNoTag}) // pushed by digest
			continue
		}
		// The distribution path's rules, on the event the distribution registry would have sent. Harbor does
		// not say the media type: PUSH_ARTIFACT is sent for manifests and indexes only (never blobs), and a
		// pushed artifact that is not an image (a Helm chart, say) is rejected by the check like any other.
		var e Event
		e.ID, e.Action = ev.ID, "push"
		e.Target.MediaType = "application/vnd.oci.image.manifest.v1+json"
		e.Target.Repository, e.Target.Tag, e.Target.Digest = repo, r.Tag, r.Digest
		d := c.Decide(e)
		if d.Job != nil {
			d.Job.MediaType = ""
		}
		decs = append(decs, d)
	}
	return decs, evs
}

// harborJobs is the Harbor webhook's body handling: the jobs of a payload and the ignored resources.
func (s *Service) harborJobs(body []byte) ([]*Job, map[string]int, error) {
	p, err := ParseHarbor(body)
	if err != nil {
		return nil, nil, err
	}
	decs, evs := s.cfg.DecideHarbor(p)
	var jobs []*Job
	ignored := map[string]int{}
	for i, d := range decs {
		if d.Job == nil {
			s.ignore(ignored, d.Reason, "sender", "harbor", "type", p.Type, "repository", evs[i].Repository,
				"tag", evs[i].Tag, "digest", evs[i].Digest)
			continue
		}
		s.log.Debug("harbor event", "job", d.Job.Key, "host", evs[i].Host, "operator", p.Operator)
		jobs = append(jobs, d.Job)
	}
	return jobs, ignored, nil
}
