// Package hardening holds cross-cutting tests of how crs-ci fails: secrets never leaking through any command,
// output format or CI log convention; hostile and corrupt images ending in exit 1 or 3 in bounded memory (the
// real binary, its peak RSS measured); registry faults (429 with Retry-After, connections cut mid-blob, slow
// answers, a registry vanishing between the blob uploads and the manifest) never leaving a tag on an
// incomplete image nor touching the source; and the probe's robustness inside a real root filesystem.
// docs/failure-modes.md lists every failure mode and what the tool does; these tests prove it.
package hardening
