package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// removeEmptyLogs deletes zero-length memtable write-ahead logs (*.mem)
// and value-log files (*.vlog) in dir before badger opens it.
//
// badger creates both with O_CREATE and only then extends them (ftruncate)
// and writes their header; a process killed between the two leaves an empty
// file, and badger v4.9 then refuses to open the directory ("while opening
// memtables ... Create a new file", badger issue #2207): the node could not
// restart after a kill -9 at that moment. An empty file never held a write
// (writes go to the extended, mmapped file, and no value pointer can name
// it), so removing it loses nothing. Found by TestCrashMidCompaction.
func removeEmptyLogs(dir string, log *slog.Logger) error {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: open %s: %w", dir, err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !(strings.HasSuffix(e.Name(), ".mem") || strings.HasSuffix(e.Name(), ".vlog")) {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Size() != 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("store: remove empty log file: %w", err)
		}
		log.Warn("removed an empty log file left by a crash", "file", p)
	}
	return nil
}

// RemoveEmptyLogs is removeEmptyLogs for other badger databases of the
// project (the trap node's forward spool): call it before badger.Open.
func RemoveEmptyLogs(dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return removeEmptyLogs(dir, log)
}
