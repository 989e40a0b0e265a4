//go:build !linux

package dnsd

import (
	"context"
	"log/slog"
	"os"
)

func inode(os.FileInfo) uint64 { return 0 }

// watchDir: no inotify here; the poll does the work.
func watchDir(context.Context, string, *slog.Logger) <-chan struct{} { return nil }
