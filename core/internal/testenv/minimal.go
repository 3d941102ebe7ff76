package testenv

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// MinimalImage is a one-layer image holding the named paths of a real root filesystem, with every directory
// and symlink on the way to them (so a merged /usr stays intact) and the targets of symlinks, plus extra
// files. It is how tests build small images of real distribution programs and libraries.
func MinimalImage(t testing.TB, rootfs string, cfg v1.Config, plat v1.Platform, paths []string, extra ...File) v1.Image {
	t.Helper()
	seen := map[string]bool{}
	var files []File
	var addPath func(p string, depth int)
	// addEntry adds p, whose parent directories are real directories already in the image.
	addEntry := func(p string, depth int) {
		if p == "/" || seen[p] {
			return
		}
		seen[p] = true
		fi, err := os.Lstat(filepath.Join(rootfs, p))
		if err != nil {
			t.Fatalf("MinimalImage: %v", err)
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(filepath.Join(rootfs, p))
			files = append(files, Symlink(p, target))
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			addPath(target, depth+1)
		case fi.IsDir():
			files = append(files, Dir(p))
		default:
			b, err := os.ReadFile(filepath.Join(rootfs, p))
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, Reg(p, b).WithMode(int64(fi.Mode().Perm())))
		}
	}
	// addPath adds p and every directory and symlink on the way to it.
	addPath = func(p string, depth int) {
		if depth > 40 {
			t.Fatalf("MinimalImage: symlink loop at %s", p)
		}
		p = path.Clean(p)
		dir := "/"
		for _, c := range strings.Split(strings.Trim(path.Dir(p), "/"), "/") {
			if c == "" {
				continue
			}
			next := path.Join(dir, c)
			addEntry(next, depth+1)
			for i := 0; i < 40; i++ {
				fi, err := os.Lstat(filepath.Join(rootfs, next))
				if err != nil || fi.Mode()&os.ModeSymlink == 0 {
					break
				}
				target, _ := os.Readlink(filepath.Join(rootfs, next))
				if !path.IsAbs(target) {
					target = path.Join(path.Dir(next), target)
				}
				next = path.Clean(target)
			}
			dir = next
		}
		addEntry(path.Join(dir, path.Base(p)), depth)
	}
	for _, p := range paths {
		addPath(p, 0)
	}
	files = append(files, extra...)
	return ImageFromLayers(t, cfg, plat, LayerFromFiles(files...))
}
