// Command genpolicy writes the compiled policies the probe benchmarks use: N file rules spread over N
// directories (as real policies are), the deciding rule last, compiled with core/policy.
//
//	go run ./probe/bench/genpolicy -rules N -log deny|none -out FILE
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/crs-ci/crs-ci/core/policy"
)

func main() {
	n := flag.Int("rules", 1000, "number of rules")
	logMode := flag.String("log", "deny", "logMode: deny or none")
	out := flag.String("out", "policy.bin", "output file")
	flag.Parse()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: crs-ci/v1\nkind: RuntimePolicy\nmetadata: {name: bench-%d}\nspec:\n", *n)
	fmt.Fprintf(&b, "  mode: enforce\n  logMode: %s\n  defaults: {file: allow, network: allow, exec: allow}\n  rules:\n", *logMode)
	for i := 0; i < *n-1; i++ {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "    - {name: r%d, action: deny, file: {paths: [/srv/app%d/secret.key], access: [read]}}\n", i, i)
		case 1:
			fmt.Fprintf(&b, "    - {name: r%d, action: deny, file: {paths: [\"/data/d%d/**\"], access: [write]}}\n", i, i)
		default:
			fmt.Fprintf(&b, "    - {name: r%d, action: alert, file: {paths: [\"/opt/p%d/*.conf\"], access: [read]}}\n", i, i)
		}
	}
	fmt.Fprintf(&b, "    - {name: target, action: deny, file: {paths: [\"/srv/secret/**\"], access: [read, write]}}\n")
	p, fs := policy.Parse("bench.yaml", []byte(b.String()))
	if policy.HasErrors(fs) {
		fmt.Fprintln(os.Stderr, fs)
		os.Exit(1)
	}
	bin, err := policy.Compile(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, bin, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
