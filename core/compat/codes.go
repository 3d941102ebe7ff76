package compat

// Finding codes of `crs-ci check`. They are stable: CI rules and suppressions refer to them. Each is
// documented in docs/check.md; TestCodesDocumented keeps the two in step.
const (
	CodeUnsupportedPlatform = "CRS-C001" // no probe for this OS/architecture
	CodeNoProbeBuild        = "CRS-C002" // the platform is supported, but no probe was built for this libc on it

	CodeNoLibc             = "CRS-C010" // no dynamically linked program with a known loader: nothing to preload into
	CodeGlibcTooOld        = "CRS-C011" // glibc older than the oldest the probe supports
	CodeLibcMissing        = "CRS-C012" // libc.so.6 not found in the library search path
	CodeLibraryMissing     = "CRS-C013" // a library the probe needs is not found (right machine and class)
	CodeVersionMissing     = "CRS-C014" // a symbol version the probe needs is not defined by that library
	CodeMalformedLibrary   = "CRS-C016" // a file where the loader looks is not a valid ELF library
	CodeUnresolvable       = "CRS-C017" // a path cannot be resolved: symlink loop, too deep, traversal
	CodeLoaderMissing      = "CRS-C018" // the program interpreter (PT_INTERP) is not in the image
	CodeUnhookableStatic   = "CRS-C020" // the entrypoint is statically linked
	CodeUnhookableGo       = "CRS-C021" // the entrypoint is a Go program
	CodeEntrypointNotFound = "CRS-C022" // the entrypoint (or its interpreter) is not in the image
	CodeEntrypointNotExec  = "CRS-C023" // not executable, not ELF nor #!, malformed, too large, or too many hops
	CodeArchMismatch       = "CRS-C024" // the entrypoint or loader is built for another machine
	CodeUnknownLoader      = "CRS-C025" // the entrypoint's PT_INTERP is neither a glibc nor a musl loader
	CodeNoEntrypoint       = "CRS-C030" // no ENTRYPOINT and no CMD
	CodeScriptChain        = "CRS-C041" // info: the entrypoint is a script or env; what actually runs
	CodeShellForm          = "CRS-C042" // info: shell form; the shell is checked, not the command it runs
	CodeLibcFromFallback   = "CRS-C043" // info: the libc family was taken from another program than the entrypoint
	CodePreloadKept        = "CRS-C050" // info: /etc/ld.so.preload entries that instrumenting keeps
	CodePreloadMissing     = "CRS-C051" // warning: an /etc/ld.so.preload entry is not in the image
	CodeMuslNoPreloadFile  = "CRS-C052" // info: musl ignores /etc/ld.so.preload; the probe is loaded with LD_PRELOAD
)

// allCodes lists every code, for the documentation test.
var allCodes = []string{
	CodeUnsupportedPlatform, CodeNoProbeBuild, CodeNoLibc, CodeGlibcTooOld, CodeLibcMissing, CodeLibraryMissing,
	CodeVersionMissing, CodeMalformedLibrary, CodeUnresolvable, CodeLoaderMissing, CodeUnhookableStatic,
	CodeUnhookableGo, CodeEntrypointNotFound, CodeEntrypointNotExec, CodeArchMismatch, CodeUnknownLoader,
	CodeNoEntrypoint, CodeScriptChain, CodeShellForm, CodeLibcFromFallback, CodePreloadKept, CodePreloadMissing,
	CodeMuslNoPreloadFile,
}
