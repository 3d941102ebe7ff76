// Package instrument builds the probe layer of each platform (the probe for its libc and architecture, the
// compiled policy, /etc/ld.so.preload or LD_PRELOAD), records what was done in the image config, and writes
// the -layered image or index: to the registry (only new blobs travel, the manifest or index last), or, for a
// dry run, to an OCI layout or archive. Run is the whole `crs-ci instrument`: check, policy, build, write.
package instrument
