// Package matrix is the truth matrix of crs-ci (`make matrix`, part of `make test`): for every image kind
// we know — real Ubuntu and Debian root filesystems from glibc 2.23 to the newest, an arm64 and an s390x
// root filesystem run through qemu-user, a musl image, and the negative kinds (static-only, Go entrypoint,
// libc whited out, a synthetic libc lacking the probe's symbol versions) — its test runs `bin/crs-ci check`,
// instruments the image with a fixed policy (`crs-ci instrument --dry-run --output oci:DIR`, or the layer
// forced in with core/instrument when instrument refuses), unpacks the result and runs a fixed scenario in it
// (a denied read, a denied exec through a shell, a denied connect, an allowed read with an alert, a process
// tree four levels deep), then fails when the verdict and what really happened disagree in either
// direction. It writes the table to docs/matrix.md. The package holds only tests.
package matrix
