package trap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/blowback-dnsbl/blowback/store"
)

// panicClassify is the source label of blowback_trap_panics_total for a
// panic the classifier recovered itself (Result.Recovered).
const panicClassify = "classify"

// errQuarantineFull: QuarantineMax messages are already kept.
var errQuarantineFull = errors.New("trap: quarantine full")

// quarantine keeps a message that made the classifier panic as
// <QuarantineDir>/<id>.eml (0600, in a 0700 directory), at most
// QuarantineMax of them, so that a bug an outsider can trigger at will
// cannot fill the disk. It returns the file written ("" when none).
func (s *Server) quarantine(id store.EventID, raw []byte) (string, error) {
	dir := s.cfg.QuarantineDir
	if dir == "" {
		return "", nil
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("trap: quarantine: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("trap: quarantine: %w", err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".eml") {
			n++
		}
	}
	if n >= s.cfg.QuarantineMax {
		return "", errQuarantineFull
	}
	name := filepath.Join(dir, id.String()+".eml")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("trap: quarantine: %w", err)
	}
	_, err = f.Write(raw)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("trap: quarantine: %w", err)
	}
	return name, nil
}
