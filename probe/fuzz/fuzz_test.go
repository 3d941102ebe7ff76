package fuzz

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReplay builds the C fuzz targets with clang, ASan and UBSan (probe/fuzz/build.sh) and runs every seed
// and every kept crasher/hang through them: each input must execute (one "Executed" line per file) and the
// target must exit 0 within libFuzzer's per-input timeout. A regression input failing here means a fixed bug
// in probe/src is back.
func TestReplay(t *testing.T) {
	out := t.TempDir()
	if b, err := exec.Command("./build.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("building the fuzz targets: %v\n%s", err, b)
	}
	executed := regexp.MustCompile(`(?m)^Executed (.+) in \d+ ms$`)
	for _, target := range []string{"policy", "glob"} {
		t.Run(target, func(t *testing.T) {
			var inputs []string
			for _, dir := range []string{"corpus", "regressions"} {
				files, err := filepath.Glob(filepath.Join(dir, target, "*"))
				if err != nil {
					t.Fatal(err)
				}
				inputs = append(inputs, files...)
			}
			if len(inputs) < 5 {
				t.Fatalf("only %d inputs for fuzz_%s: the corpus is missing", len(inputs), target)
			}
			regressions, _ := filepath.Glob(filepath.Join("regressions", target, "*"))
			if len(regressions) == 0 {
				t.Errorf("no regression inputs for fuzz_%s", target)
			}
			cmd := exec.Command(filepath.Join(out, "fuzz_"+target), append([]string{"-timeout=10", "-rss_limit_mb=1024"}, inputs...)...)
			cmd.Env = append(os.Environ(), "ASAN_OPTIONS=detect_leaks=1", "UBSAN_OPTIONS=print_stacktrace=1")
			b, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("fuzz_%s failed on the committed inputs: %v\n%s", target, err, tail(string(b), 60))
			}
			got := map[string]bool{}
			for _, m := range executed.FindAllStringSubmatch(string(b), -1) {
				got[m[1]] = true
			}
			for _, in := range inputs {
				if !got[in] {
					t.Errorf("fuzz_%s did not execute %s\n%s", target, in, tail(string(b), 20))
				}
			}
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
