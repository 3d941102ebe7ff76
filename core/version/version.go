// Package version holds the crs-ci version, set at build time with
// -ldflags "-X github.com/crs-ci/crs-ci/core/version.Version=…".
package version

// Version is the release version of this build; "dev" for an untagged build.
var Version = "dev"

// Commit is the git commit this build was made from, when known.
var Commit = ""
