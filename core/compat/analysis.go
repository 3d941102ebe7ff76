package compat

import (
	"archive/tar"
	"debug/elf"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/probe"
	"github.com/crs-ci/crs-ci/core/report"
)

// fileSystem is what the analysis needs from a merged image filesystem (*image.FS).
type fileSystem interface {
	Lookup(p string) (*image.Entry, bool)
	Resolve(p string) (string, *image.Entry, error)
}

type analysis struct {
	opts   Options
	cfg    *v1.ConfigFile
	plat   v1.Platform
	arch   archInfo
	fs     fileSystem
	result Result
}

// Entrypoint kinds in the report.
const (
	KindDynamicGlibc = "dynamic-glibc"
	KindDynamicMusl  = "dynamic-musl"
	KindStatic       = "static"
	KindGo           = "go"
	KindMissing      = "missing"
	KindNotFound     = "not-found"
	KindNotProgram   = "not-a-program"
	KindUnknownLD    = "dynamic-unknown-loader"
	KindForeignArch  = "foreign-architecture"
)

const (
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	maxHops     = 8 // scripts and env indirections followed from the entrypoint
)

// machines maps OCI architectures to ELF machines.
var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// resolve follows symlinks inside the image. A path that does not exist (or runs through a non-directory)
// gives a nil entry and no error; an error is a path that cannot be resolved at all (a loop).
func (a *analysis) resolve(p string) (string, *image.Entry, error) {
	rp, e, err := a.fs.Resolve(p)
	if errors.Is(err, image.ErrNotExist) || errors.Is(err, image.ErrNotDir) {
		return rp, nil, nil
	}
	return rp, e, err
}

func (a *analysis) machine() elf.Machine { return machines[a.plat.Architecture] }

func (a *analysis) run() {
	family, loader := a.entrypoint()
	if family == "" {
		family, loader = a.fallbackFamily()
	}
	switch family {
	case probe.Glibc:
		a.checkGlibc(loader)
	case probe.Musl:
		a.checkMusl(loader)
	default:
		a.add(CodeNoLibc, report.Error, "",
			"no dynamically linked program with a glibc or musl loader was found: there is no dynamic loader to preload the probe into",
			"the probe protects dynamically linked programs; static-only and scratch images cannot carry it")
	}
}

// program is a file that a step of the entrypoint chain runs, with the arguments that follow it.
type program struct {
	name string   // as written (argv[0], a #! interpreter, env's argument)
	args []string // the arguments after it
}

// entrypoint resolves ENTRYPOINT+CMD to the program that actually runs and classifies it. It returns the
// libc family and loader path when that program is a dynamically linked ELF with a known loader.
func (a *analysis) entrypoint() (family, loader string) {
	argv := append(append([]string{}, a.cfg.Config.Entrypoint...), a.cfg.Config.Cmd...)
	ep := &report.Entrypoint{Argv: argv, Kind: KindMissing}
	a.result.Platform.Entrypoint = ep
	if len(argv) == 0 {
		a.add(CodeNoEntrypoint, report.Warning, "",
			"the image has no ENTRYPOINT and no CMD: the program run will be given at run time and is not checked", "")
		return "", ""
	}
	if len(argv) >= 3 && (argv[1] == "-c") && isShell(argv[0]) {
		a.add(CodeShellForm, report.Info, argv[0],
			fmt.Sprintf("shell form: the shell %s is checked; the command it runs (%q) is not", argv[0], argv[2]), "")
	}
	cur := program{name: argv[0], args: argv[1:]}
	for hop := 0; ; hop++ {
		if hop >= maxHops {
			ep.Kind = KindNotProgram
			a.add(CodeEntrypointNotExec, report.Error, ep.Path,
				fmt.Sprintf("more than %d scripts or env indirections from %q: cannot tell which program runs", maxHops, argv[0]), "")
			return "", ""
		}
		p, e, ok := a.lookProgram(cur.name, hop == 0)
		if !ok {
			ep.Kind = KindNotFound
			return "", ""
		}
		ep.Path = p
		if !a.executable(p, e) {
			ep.Kind = KindNotProgram
			return "", ""
		}
		facts := DecodeFacts(e.Facts)
		switch {
		case facts == nil:
			ep.Kind = KindNotProgram
			msg := fmt.Sprintf("%s was not analysed", p)
			if e.TooLarge {
				msg = fmt.Sprintf("%s (%d bytes) is larger than the %d bytes crs-ci reads from one file: it was not analysed", p, e.Size, image.DefaultMaxFileSize)
			}
			a.add(CodeEntrypointNotExec, report.Error, p, msg, "")
			return "", ""
		case facts.Kind == KindScript:
			next, ok := a.interpreter(p, facts.Shebang, cur.args)
			if !ok {
				ep.Kind = KindNotProgram
				return "", ""
			}
			cur = next
			continue
		case facts.Kind == KindELF && (path.Base(p) == "env" || path.Base(cur.name) == "env") && facts.Malformed == "" && len(cur.args) > 0:
			if next, ok := envTarget(cur.args); ok {
				a.add(CodeScriptChain, report.Info, p, fmt.Sprintf("%s runs %s: that program is checked", p, next.name), "")
				cur = next
				continue
			}
		case facts.Kind != KindELF:
			ep.Kind = KindNotProgram
			a.add(CodeEntrypointNotExec, report.Error, p, "the program is neither an ELF executable nor a #! script", "")
			return "", ""
		}
		kind, family, loader := a.classify(p, facts)
		ep.Kind = kind
		return family, loader
	}
}

func isShell(p string) bool {
	switch path.Base(p) {
	case "sh", "bash", "dash", "ash", "zsh", "ksh", "busybox":
		return true
	}
	return false
}

// lookProgram finds name the way the container runtime does: a name with a slash relative to the working
// directory, otherwise the first executable regular file along PATH from the image's Env.
func (a *analysis) lookProgram(name string, fromArgv bool) (string, *image.Entry, bool) {
	if name == "" {
		a.add(CodeEntrypointNotFound, report.Error, "", "the entrypoint's program name is empty", "")
		return "", nil, false
	}
	if strings.Contains(name, "/") {
		p := name
		if !isAbs(p) {
			wd := a.cfg.Config.WorkingDir
			if wd == "" {
				wd = "/"
			}
			p = path.Join(wd, p)
		}
		rp, e, err := a.resolve(p)
		if err != nil {
			a.add(CodeUnresolvable, report.Error, p, fmt.Sprintf("resolving the program %s: %v", p, err), "")
			return "", nil, false
		}
		if e == nil {
			a.add(CodeEntrypointNotFound, report.Error, p, fmt.Sprintf("the program %s is not in the image", p), "")
			return "", nil, false
		}
		return rp, e, true
	}
	dirs := a.searchPath()
	for _, d := range dirs {
		p := path.Join(d, name)
		rp, e, err := a.resolve(p)
		if err != nil {
			a.add(CodeUnresolvable, report.Error, p, fmt.Sprintf("resolving the program %s: %v", p, err), "")
			return "", nil, false
		}
		if e != nil && (e.Type == tar.TypeReg || e.Type == tar.TypeLink) && e.Mode&0o111 != 0 {
			return rp, e, true
		}
	}
	what := "the entrypoint"
	if !fromArgv {
		what = "the interpreter"
	}
	a.add(CodeEntrypointNotFound, report.Error, "",
		fmt.Sprintf("%s %q is not an executable file in any PATH directory of the image (%s)", what, name, strings.Join(dirs, ":")), "")
	return "", nil, false
}

// searchPath is PATH from the image config's Env, or the default the container runtimes use.
func (a *analysis) searchPath() []string {
	pathVar := defaultPath
	for _, kv := range a.cfg.Config.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	var dirs []string
	for _, d := range strings.Split(pathVar, ":") {
		if d == "" {
			d = "."
		}
		if !isAbs(d) {
			wd := a.cfg.Config.WorkingDir
			if wd == "" {
				wd = "/"
			}
			d = path.Join(wd, d)
		}
		dirs = append(dirs, d)
	}
	return dirs
}

func (a *analysis) executable(p string, e *image.Entry) bool {
	switch e.Type {
	case tar.TypeReg, tar.TypeLink:
	case tar.TypeDir:
		a.add(CodeEntrypointNotExec, report.Error, p, fmt.Sprintf("%s is a directory, not a program", p), "")
		return false
	default:
		a.add(CodeEntrypointNotExec, report.Error, p, fmt.Sprintf("%s is not a regular file (tar type %q)", p, e.Type), "")
		return false
	}
	if e.Mode&0o111 == 0 {
		a.add(CodeEntrypointNotExec, report.Error, p,
			fmt.Sprintf("%s is not executable (mode %04o): the container cannot start it", p, e.Mode&0o7777), "")
		return false
	}
	return true
}

// interpreter follows a #! line: the kernel runs the interpreter with the rest of the line as one argument.
func (a *analysis) interpreter(script, shebang string, args []string) (program, bool) {
	interp, arg, _ := strings.Cut(strings.TrimLeft(shebang, " \t"), " ")
	if i := strings.IndexByte(interp, '\t'); i >= 0 {
		interp, arg = interp[:i], interp[i+1:]+" "+arg
	}
	arg = strings.TrimSpace(arg)
	if interp == "" {
		a.add(CodeEntrypointNotExec, report.Error, script, fmt.Sprintf("%s starts with #! but names no interpreter", script), "")
		return program{}, false
	}
	if !isAbs(interp) {
		// The kernel resolves a relative interpreter against the working directory; make it explicit.
		interp = "./" + interp
	}
	next := program{name: interp}
	switch {
	case path.Base(interp) == "env":
		// "#!/usr/bin/env prog": env's own rules find prog (the next hop).
		next.args = append(next.args, strings.Fields(arg)...)
	case arg != "":
		next.args = append(next.args, arg)
	}
	next.args = append(append(next.args, script), args...)
	a.add(CodeScriptChain, report.Info, script, fmt.Sprintf("%s is a script run by %s: the interpreter is checked", script, interp), "")
	return next, true
}

// envTarget returns the program `env ARGS…` runs: the first argument that is neither an option nor NAME=VALUE.
func envTarget(args []string) (program, bool) {
	for i := 0; i < len(args); i++ {
		s := args[i]
		switch {
		case s == "-S" || s == "--split-string":
			continue
		case s == "-u" || s == "--unset" || s == "-C" || s == "--chdir":
			i++ // the option's argument
		case strings.HasPrefix(s, "-S"):
			// -S"prog args": the rest is split into words.
			if f := strings.Fields(strings.TrimPrefix(s, "-S")); len(f) > 0 {
				return program{name: f[0], args: append(f[1:], args[i+1:]...)}, true
			}
		case strings.HasPrefix(s, "-"):
			continue
		case strings.Contains(s, "="):
			continue
		default:
			return program{name: s, args: args[i+1:]}, true
		}
	}
	return program{}, false
}

// classify decides what kind of ELF program the entrypoint is and whether the probe can see it.
func (a *analysis) classify(p string, f *Facts) (kind, family, loader string) {
	if f.Malformed != "" {
		a.add(CodeEntrypointNotExec, report.Error, p, fmt.Sprintf("%s is not a valid ELF program: %s", p, f.Malformed), "")
		return KindNotProgram, "", ""
	}
	if f.Machine != a.machine() || f.Class != elf.ELFCLASS64 {
		a.add(CodeArchMismatch, report.Error, p, fmt.Sprintf("%s is built for %s (%s), but the platform is %s",
			p, f.Machine, f.Class, a.result.Platform.Platform), "")
		return KindForeignArch, "", ""
	}
	severity, hint := report.Error, "with --allow-unhookable-entrypoint this is a warning, for images whose child processes matter more than the entrypoint"
	if a.opts.AllowUnhookableEntrypoint {
		severity, hint = report.Warning, ""
	}
	if f.Go {
		a.add(CodeUnhookableGo, severity, p,
			fmt.Sprintf("%s is a Go program: Go makes its system calls itself, not through libc, so the probe cannot see them", p), hint)
		return KindGo, "", ""
	}
	if f.Interp == "" {
		a.add(CodeUnhookableStatic, severity, p,
			fmt.Sprintf("%s is statically linked: no dynamic loader runs, so the probe is never loaded into it", p), hint)
		return KindStatic, "", ""
	}
	switch loaderFamily(f.Interp) {
	case probe.Glibc:
		return KindDynamicGlibc, probe.Glibc, f.Interp
	case probe.Musl:
		return KindDynamicMusl, probe.Musl, f.Interp
	}
	a.add(CodeUnknownLoader, report.Error, p,
		fmt.Sprintf("%s asks for the program interpreter %s, which is neither a glibc (ld-linux) nor a musl (ld-musl) loader", p, f.Interp), "")
	return KindUnknownLD, "", ""
}

// loaderFamily tells the libc family from a PT_INTERP path.
func loaderFamily(interp string) string {
	base := path.Base(interp)
	switch {
	case strings.HasPrefix(base, "ld-musl-"):
		return probe.Musl
	case strings.HasPrefix(base, "ld-linux"):
		return probe.Glibc
	}
	return ""
}

// fallbackFamily finds the libc family when the entrypoint does not tell (none, static, Go): the programs a
// container most often starts, read by their own PT_INTERP, never by a file merely existing.
func (a *analysis) fallbackFamily() (family, loader string) {
	for _, p := range []string{"/bin/sh", "/usr/bin/env", "/bin/bash"} {
		rp, e, err := a.resolve(p)
		if err != nil || e == nil {
			continue
		}
		f := DecodeFacts(e.Facts)
		if f == nil || f.Kind != KindELF || f.Malformed != "" || f.Go || f.Interp == "" || f.Machine != a.machine() {
			continue
		}
		if fam := loaderFamily(f.Interp); fam != "" {
			a.add(CodeLibcFromFallback, report.Info, rp,
				fmt.Sprintf("the libc family (%s) was read from %s, the entrypoint does not use a dynamic loader", fam, rp), "")
			return fam, f.Interp
		}
	}
	return "", ""
}

// library is an ELF file found where the loader looks.
type library struct {
	path  string
	facts *Facts
}

// findLibrary searches soname in dirs the way ld.so does: the first file of the right machine and class
// wins; files of another machine or class are skipped. It adds a finding and returns false when the search
// cannot be completed (loop, malformed ELF) or finds nothing.
func (a *analysis) findLibrary(soname string, dirs []string, neededBy string) (library, bool) {
	var skipped []string
	for _, d := range dirs {
		p := path.Join(d, soname)
		rp, e, err := a.resolve(p)
		if err != nil {
			a.add(CodeUnresolvable, report.Error, p, fmt.Sprintf("resolving %s (needed by %s): %v", p, neededBy, err), "")
			return library{}, false
		}
		if e == nil || e.Type == tar.TypeDir {
			continue
		}
		f := DecodeFacts(e.Facts)
		if f == nil {
			skipped = append(skipped, rp+" (too large to analyse)")
			continue
		}
		if f.Kind != KindELF || f.Malformed != "" {
			why := "it is not an ELF file"
			if f.Malformed != "" {
				why = f.Malformed
			}
			a.add(CodeMalformedLibrary, report.Error, rp,
				fmt.Sprintf("%s (%s, needed by %s) is not a valid ELF library: %s; the loader would fail for every program", rp, soname, neededBy, why), "")
			return library{}, false
		}
		if f.Machine != a.machine() || f.Class != elf.ELFCLASS64 {
			skipped = append(skipped, fmt.Sprintf("%s (%s, %s)", rp, f.Machine, f.Class))
			continue
		}
		return library{path: rp, facts: f}, true
	}
	msg := fmt.Sprintf("%s (needed by %s) is not in the library search path of the image (%s)", soname, neededBy, strings.Join(dirs, ", "))
	if len(skipped) > 0 {
		msg += "; skipped for the wrong machine or class: " + strings.Join(skipped, ", ")
	}
	code := CodeLibraryMissing
	if soname == "libc.so.6" && neededBy == "the image" {
		code = CodeLibcMissing
	}
	a.add(code, report.Error, "", msg, "")
	return library{}, false
}

// glibcDirs is the glibc loader's search path in an image: multiarch directories, then the system ones.
func (a *analysis) glibcDirs() []string {
	t := a.arch.triplet
	return []string{"/lib/" + t, "/usr/lib/" + t, "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
}

// checkLoader makes sure the program interpreter is in the image and is an ELF for this machine.
func (a *analysis) checkLoader(loader string) (string, bool) {
	rp, e, err := a.resolve(loader)
	if err != nil {
		a.add(CodeUnresolvable, report.Error, loader, fmt.Sprintf("resolving the dynamic loader %s: %v", loader, err), "")
		return "", false
	}
	if e == nil {
		a.add(CodeLoaderMissing, report.Error, loader,
			fmt.Sprintf("the dynamic loader %s is not in the image: dynamically linked programs cannot start", loader), "")
		return "", false
	}
	f := DecodeFacts(e.Facts)
	if f == nil || f.Kind != KindELF || f.Malformed != "" {
		why := "it is not an ELF file"
		if f != nil && f.Malformed != "" {
			why = f.Malformed
		}
		a.add(CodeMalformedLibrary, report.Error, rp, fmt.Sprintf("the dynamic loader %s is not a valid ELF file: %s", rp, why), "")
		return "", false
	}
	if f.Machine != a.machine() {
		a.add(CodeArchMismatch, report.Error, rp, fmt.Sprintf("the dynamic loader %s is built for %s, but the platform is %s",
			rp, f.Machine, a.result.Platform.Platform), "")
		return "", false
	}
	return rp, true
}

func (a *analysis) checkGlibc(loader string) {
	a.result.Platform.Libc.Family = probe.Glibc
	a.checkLoader(loader)
	dirs := a.glibcDirs()
	libc, ok := a.findLibrary("libc.so.6", dirs, "the image")
	if ok {
		a.result.Platform.Libc.Path = libc.path
		a.result.Platform.Libc.Build = libc.facts.Banner
		v, ok := highestGlibc(libc.facts.Verdefs)
		if ok {
			// Releases that add no symbol (2.31, 2.37…) show the banner's release number, when it is newer.
			a.result.Platform.Libc.Version = v.String()
			if bv, ok := bannerVersion(libc.facts.Banner); ok && v.less(bv) && bv[0] == v[0] && bv[1] <= v[1]+3 {
				a.result.Platform.Libc.Version = bv.String()
			}
			if v.less(a.arch.minGlibc) {
				a.add(CodeGlibcTooOld, report.Error, libc.path,
					fmt.Sprintf("glibc %s is older than %s, the oldest the probe supports", v, a.arch.minGlibc), "")
			}
		} else {
			a.add(CodeGlibcTooOld, report.Error, libc.path,
				fmt.Sprintf("%s defines no GLIBC_2.N symbol version: it is not a glibc the probe supports", libc.path), "")
		}
	}
	a.checkPreload()
	a.checkProbeNeeds(probe.Glibc, dirs)
}

func (a *analysis) checkMusl(loader string) {
	a.result.Platform.Libc.Family = probe.Musl
	if rp, ok := a.checkLoader(loader); ok {
		a.result.Platform.Libc.Path = rp
		if e, ok := a.fs.Lookup(rp); ok {
			if f := DecodeFacts(e.Facts); f != nil {
				if v, ok := strings.CutPrefix(f.Banner, "musl libc "); ok {
					a.result.Platform.Libc.Version = v
				}
			}
		}
	}
	if _, err := a.preloadEntries(); err == nil && a.result.Preload != nil {
		a.add(CodeMuslNoPreloadFile, report.Info, probe.PreloadPath,
			"musl ignores /etc/ld.so.preload; the probe is loaded through LD_PRELOAD in the image's Env", "")
	}
	a.result.Preload = nil
	a.checkProbeNeeds(probe.Musl, []string{"/lib", "/usr/local/lib", "/usr/lib"})
}

// muslBuiltin are the sonames musl's loader answers itself: they are all the one libc.
var muslBuiltin = map[string]bool{"libc.so": true, "libdl.so.2": true, "libpthread.so.0": true, "librt.so.1": true,
	"libm.so.6": true, "libutil.so.1": true, "libxnet.so": true, "libcrypt.so.1": true, "libresolv.so.2": true}

// checkProbeNeeds does what ld.so does with the probe: every DT_NEEDED resolved in the image, every needed
// symbol version defined by that library.
func (a *analysis) checkProbeNeeds(family string, dirs []string) {
	art, err := a.opts.Probes(family, a.plat.Architecture)
	if err != nil {
		a.add(CodeNoProbeBuild, report.Error, "", fmt.Sprintf("no probe for %s on %s: %v", family, a.result.Platform.Platform, err), "")
		return
	}
	a.result.Libc = family
	for _, need := range art.Needs {
		if family == probe.Musl && muslBuiltin[need.Soname] {
			continue
		}
		lib, ok := a.findLibrary(need.Soname, dirs, "the probe")
		if !ok {
			continue
		}
		defined := map[string]bool{}
		for _, v := range lib.facts.Verdefs {
			defined[v] = true
		}
		var missing []string
		for _, v := range need.Versions {
			if !defined[v] {
				missing = append(missing, v)
			}
		}
		for _, v := range missing {
			a.add(CodeVersionMissing, report.Error, lib.path,
				fmt.Sprintf("version `%s' not found in %s (required by the probe %s): the loader would stop every program", v, lib.path, art.File),
				"")
		}
	}
}

// preloadEntries reads /etc/ld.so.preload (symlinks resolved) into the result.
func (a *analysis) preloadEntries() (string, error) {
	rp, e, err := a.resolve(probe.PreloadPath)
	if err != nil {
		return "", err
	}
	if e == nil || e.Type == tar.TypeDir {
		return "", nil
	}
	f := DecodeFacts(e.Facts)
	a.result.Preload = []string{}
	if f != nil {
		for _, p := range f.Preload {
			if p != probe.LibraryPath { // an image instrumented before: the probe is added once
				a.result.Preload = append(a.result.Preload, p)
			}
		}
	}
	return rp, nil
}

func (a *analysis) checkPreload() {
	rp, err := a.preloadEntries()
	if err != nil {
		a.add(CodeUnresolvable, report.Error, probe.PreloadPath, fmt.Sprintf("resolving %s: %v", probe.PreloadPath, err), "")
		return
	}
	if a.result.Preload == nil {
		return
	}
	var kept []string
	for _, p := range a.result.Preload {
		found := false
		if isAbs(p) {
			_, e, err := a.resolve(p)
			found = err == nil && e != nil
		} else {
			// A bare name is searched like a DT_NEEDED.
			for _, d := range a.glibcDirs() {
				if _, e, err := a.resolve(path.Join(d, p)); err == nil && e != nil {
					found = true
					break
				}
			}
		}
		if !found {
			a.add(CodePreloadMissing, report.Warning, rp,
				fmt.Sprintf("%s lists %s, which is not in the image: the loader prints an error for every program", rp, p), "")
		}
		kept = append(kept, p)
	}
	if len(kept) > 0 {
		a.add(CodePreloadKept, report.Info, rp, fmt.Sprintf("%s already lists %s; instrumenting keeps them after the probe",
			rp, strings.Join(kept, ", ")), "")
	}
}

// version is a glibc version number, e.g. 2.36 or 2.2.5.
type version []int

func parseVersion(s string) (version, bool) {
	var v version
	for _, p := range strings.Split(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		v = append(v, n)
	}
	return v, len(v) >= 2
}

func (v version) less(w version) bool {
	for i := 0; i < len(v) && i < len(w); i++ {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return len(v) < len(w)
}

func (v version) String() string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ".")
}

var bannerVersionRE = regexp.MustCompile(`release version ([0-9]+\.[0-9]+(?:\.[0-9]+)?)`)

// bannerVersion reads N.M from "GNU C Library (…) stable release version N.M".
func bannerVersion(banner string) (version, bool) {
	m := bannerVersionRE.FindStringSubmatch(banner)
	if m == nil {
		return nil, false
	}
	return parseVersion(m[1])
}

// highestGlibc is the highest GLIBC_2.N version definition: the glibc release (backports add none).
func highestGlibc(defs []string) (version, bool) {
	var vs []version
	for _, d := range defs {
		if s, ok := strings.CutPrefix(d, "GLIBC_"); ok {
			if v, ok := parseVersion(s); ok {
				vs = append(vs, v)
			}
		}
	}
	if len(vs) == 0 {
		return nil, false
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].less(vs[j]) })
	return vs[len(vs)-1], true
}
