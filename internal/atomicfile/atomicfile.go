// Package atomicfile writes a file so that a reader sees either the old
// content or the whole new content, never a part: temp file in the same
// directory, fsync, chmod, rename, fsync of the directory.
package atomicfile

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
)

// Write fills path through write and gives it mode perm. On any error the
// temp file is removed and path is left as it was.
func Write(path string, perm os.FileMode, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	// CreateTemp makes the file 0600: the content is never readable by
	// others before the chmod below, whatever perm is.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
