// Command gate checks built probe artifacts with probe.Gate and fails (exit 1) on any problem; `make probe`
// runs it after building. Usage: go run ./core/probe/gate EXPORTS.txt ARTIFACT.so...
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/crs-ci/crs-ci/core/probe"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: gate EXPORTS.txt ARTIFACT.so...")
		os.Exit(2)
	}
	text, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "gate: reading hook list: %v\n", err)
		os.Exit(2)
	}
	exports := probe.ParseExports(string(text))
	failed := false
	for _, path := range os.Args[2:] {
		name := filepath.Base(path)
		parts := strings.Split(strings.TrimSuffix(name, ".so"), "-") // crs-probe-LIBC-ARCH
		if len(parts) != 4 {
			fmt.Fprintf(os.Stderr, "gate: %s: not named crs-probe-LIBC-ARCH.so\n", path)
			failed = true
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gate: %v\n", err)
			failed = true
			continue
		}
		problems := probe.Gate(parts[2], parts[3], b, exports)
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "gate: %s: %s\n", path, p)
		}
		if len(problems) > 0 {
			failed = true
		} else {
			fmt.Printf("gate: %s ok\n", name)
		}
	}
	if failed {
		os.Exit(1)
	}
}
