package policy

import "sort"

// syscallEntry is one system call's number on x86_64 and aarch64 (-1 when absent there).
type syscallEntry struct {
	Name    string
	X86_64  int
	Aarch64 int
}

// NoSyscall is stored in the compiled form for a call that does not exist on an architecture.
const NoSyscall = 0xFFFFFFFF

var syscallByName = func() map[string]syscallEntry {
	m := make(map[string]syscallEntry, len(syscallTable))
	for _, e := range syscallTable {
		m[e.Name] = e
	}
	return m
}()

func lookupSyscall(name string) (syscallEntry, bool) {
	e, ok := syscallByName[name]
	return e, ok
}

func syscallNames() []string {
	out := make([]string, 0, len(syscallTable))
	for _, e := range syscallTable {
		out = append(out, e.Name)
	}
	sort.Strings(out)
	return out
}

// SyscallNumber returns the number of a named system call for an OCI architecture (amd64 or arm64).
func SyscallNumber(name, arch string) (int, bool) {
	e, ok := syscallByName[name]
	if !ok {
		return 0, false
	}
	n := e.X86_64
	if arch == "arm64" {
		n = e.Aarch64
	}
	return n, n >= 0
}

// SyscallName returns the name of an x86_64 (amd64) or aarch64 (arm64) system call number.
func SyscallName(nr int, arch string) (string, bool) {
	for _, e := range syscallTable {
		if (arch == "arm64" && e.Aarch64 == nr) || (arch != "arm64" && e.X86_64 == nr) {
			return e.Name, true
		}
	}
	return "", false
}
