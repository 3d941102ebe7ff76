// Package fuzz holds the libFuzzer targets of the probe's C decision engine (targets/: the compiled-policy
// loader, key index and matcher; the glob matcher), their committed seed corpus (corpus/) and every input
// that once crashed or hung them (regressions/). `make fuzz` and `make fuzz-short` (scripts/fuzz.sh) run
// them for a while; the test in this package replays the corpus and the regressions on every `go test`.
package fuzz
