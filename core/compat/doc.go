// Package compat decides, per platform of an image, whether the crs-ci probe can protect it: it does what
// the dynamic loader would do with the probe (resolve each DT_NEEDED inside the image, same machine and
// class, every needed symbol version among the library's version definitions) and checks that the program
// the container runs is a dynamically linked ELF with that libc's loader. It reads files only, through the
// merged filesystem of core/image, and explains every reason as a finding with a stable code.
package compat
