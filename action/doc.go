// Package action holds the GitHub Action's scripts (install.sh, run.sh) and the pinned release
// checksums; action.yml at the repository root is the action itself. This package has no Go code of
// its own: its tests run the composite action's steps in a recreated runner environment against the
// real crs-ci, and check the checksum table's format.
package action
