// Command goscenario is the entrypoint of the truth matrix's Go image: a Go program (CGO off, so it makes
// raw system calls and is not seen by an LD_PRELOAD probe) doing the matrix scenario itself and printing
// the same lines as scenario.sh: "@@ STEP rc=EXIT out=OUTPUT". Step "child-shell" also runs /bin/sh -c id,
// whose shell is the image's own dynamically linked program.
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

const self = "/opt/matrix/goscenario"

func report(step string, rc int, out string) {
	fmt.Printf("@@ %s rc=%d out=%s\n", step, rc, strings.ReplaceAll(out, "\n", " "))
}

func cat(p string) (int, string) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 1, err.Error()
	}
	return 0, string(b)
}

func run(argv ...string) (int, string) {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		return 126, string(out) + err.Error()
	}
	return 0, string(out)
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "tree" {
		n, _ := strconv.Atoi(os.Args[2])
		var rc int
		var out string
		if n <= 0 {
			rc, out = cat("/srv/secret/key")
		} else {
			rc, out = run(self, "tree", strconv.Itoa(n-1))
		}
		fmt.Print(out)
		os.Exit(rc)
	}
	fmt.Printf("@@ begin pid=%d\n", os.Getpid())
	maps, err := os.ReadFile("/proc/self/maps")
	p := "no"
	if strings.Contains(string(maps), "/usr/lib/crs-ci/probe.so") {
		p = "yes"
	}
	report("maps", map[bool]int{true: 1, false: 0}[err != nil], "probe="+p)
	rc, out := cat("/srv/secret/key")
	report("read-denied", rc, out)
	rc, out = run("/usr/bin/id")
	report("exec-denied", rc, out)
	c, err := net.Dial("tcp", "127.0.0.1:25")
	if err != nil {
		report("connect-denied", 1, err.Error())
	} else {
		c.Close()
		report("connect-denied", 0, "")
	}
	rc, out = cat("/srv/public/watched")
	report("alert-read", rc, out)
	rc, out = run(self, "tree", "3")
	report("tree", rc, out)
	rc, out = run("/bin/sh", "-c", "id")
	report("child-shell", rc, out)
	fmt.Println("@@ end")
}
