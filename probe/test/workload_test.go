package probetest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/crs-ci/crs-ci/core/probe"
)

// TestWorkloadUnchanged runs ordinary work that the policy allows — archives, package queries, a file tree
// walk, pipes, redirections, job control, here-documents — with and without the probe, and requires the same
// output, the same exit code and no deny event: the probe must never break what it was not asked to stop.
func TestWorkloadUnchanged(t *testing.T) {
	script := `set -e
mkdir -p /tmp/w/out && cd /tmp/w
tar -C /usr/share -czf t.tgz doc/bash doc/coreutils 2>/dev/null
tar -C out -xzf t.tgz && find out -type f | sort | md5sum
dpkg -l | awk '{print $2}' | sort | md5sum
ls -laR /usr/share/doc /usr/lib/x86_64-linux-gnu 2>/dev/null | wc -l
printf 'b\na\nc\n' | sort | tr a-z A-Z | xargs echo
cat <<EOT > here.txt
line $((6 * 7))
EOT
cat here.txt; cp here.txt copy.txt && mv copy.txt moved.txt && ln -s moved.txt link && readlink link
(sleep 0.1; echo background) & wait
bash -c 'for i in 1 2 3; do echo -n $i; done; echo'
perl -e 'open(my $f, "<", "/etc/hostname") or die; opendir(my $d, "/usr") or die; print scalar(grep {!/^\./} readdir $d), "\n"'
rm -rf /tmp/w/out; echo done`
	r := newRoot(t, "bookworm", probe.Glibc, "amd64")
	r.setPolicy(t, compile(t, "enforce.yaml"))
	with := r.run(t, "bash", "-c", script)
	if err := os.Remove(filepath.Join(r.dir, probe.PreloadPath)); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(r.dir, "tmp/w"))
	without := r.run(t, "bash", "-c", script)
	if without.code != 0 {
		t.Fatalf("the workload fails even without the probe:\n%s", without)
	}
	if with.code != without.code || with.stdout != without.stdout {
		t.Errorf("with the probe:\n%s\nwithout:\n%s", with, without)
	}
	for _, e := range with.events {
		if e.Action == "deny" || e.Action == "error" {
			t.Errorf("unexpected event %+v", e)
		}
	}
}
