package image

import (
	"archive/tar"
	"errors"
	"fmt"
	iofs "io/fs"
	"path"
	"sort"
	"strings"
	"sync"
)

// MaxSymlinks is how many symbolic links Resolve follows before it calls the path a loop (Linux's limit).
const MaxSymlinks = 40

// Errors Resolve wraps, to test with errors.Is.
var (
	ErrNotExist    = iofs.ErrNotExist
	ErrSymlinkLoop = errors.New("too many levels of symbolic links")
	ErrNotDir      = errors.New("not a directory")
)

// FS is the merged filesystem of an image: every path that the container would see, with its metadata and
// the facts an Extractor kept. It is read-only and safe for concurrent use.
type FS struct {
	entries map[string]*Entry

	sortOnce sync.Once
	sorted   []string
}

// Lookup returns the entry at an exact path, without following symbolic links.
func (fs *FS) Lookup(p string) (*Entry, bool) {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	e, ok := fs.entries[path.Clean(p)]
	return e, ok
}

// Len is the number of entries, the root included.
func (fs *FS) Len() int { return len(fs.entries) }

// Walk calls fn for every entry, sorted by path, and stops at the first error fn returns.
func (fs *FS) Walk(fn func(*Entry) error) error {
	fs.sortOnce.Do(func() {
		fs.sorted = make([]string, 0, len(fs.entries))
		for p := range fs.entries {
			fs.sorted = append(fs.sorted, p)
		}
		sort.Strings(fs.sorted)
	})
	for _, p := range fs.sorted {
		if err := fn(fs.entries[p]); err != nil {
			return err
		}
	}
	return nil
}

// Resolve follows symbolic links in every component of p, as the kernel would inside the container:
// absolute link targets are relative to the image root, ".." never climbs above it. It returns the
// resolved path and its entry. A missing path wraps ErrNotExist; more than MaxSymlinks links wraps
// ErrSymlinkLoop; a non-directory in the middle of the path wraps ErrNotDir. Errors name the path.
func (fs *FS) Resolve(p string) (string, *Entry, error) {
	todo := splitPath(p)
	cur := "/"
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		if c == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		e, ok := fs.entries[next]
		if !ok {
			return next, nil, fmt.Errorf("resolving %s: %s: %w", p, next, ErrNotExist)
		}
		if e.Type == tar.TypeSymlink {
			links++
			if links > MaxSymlinks {
				return next, nil, fmt.Errorf("resolving %s: %w (more than %d, last at %s -> %s)", p, ErrSymlinkLoop, MaxSymlinks, next, e.Linkname)
			}
			if e.Linkname == "" {
				return next, nil, fmt.Errorf("resolving %s: %s is a symbolic link with an empty target: %w", p, next, ErrNotExist)
			}
			if strings.HasPrefix(e.Linkname, "/") {
				cur = "/"
			}
			todo = append(splitPath(e.Linkname), todo...)
			continue
		}
		if len(todo) > 0 && e.Type != tar.TypeDir {
			return next, nil, fmt.Errorf("resolving %s: %s: %w", p, next, ErrNotDir)
		}
		cur = next
	}
	e, ok := fs.entries[cur]
	if !ok {
		return cur, nil, fmt.Errorf("resolving %s: %s: %w", p, cur, ErrNotExist)
	}
	return cur, e, nil
}

// splitPath splits a path into components, dropping empty ones and ".".
func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}
