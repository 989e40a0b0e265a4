package distrib

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/blowback-dnsbl/blowback/zones"
)

// ErrBaseline: the guard's baseline file cannot be read.
var ErrBaseline = errors.New("distrib: bad guard baseline")

// Baseline is what the guard compares a new version with: the last version
// published. It is a small JSON file, written atomically.
type Baseline struct {
	Zone    string `json:"zone"`
	Serial  uint32 `json:"serial"`
	Entries int    `json:"entries"`
}

// maxBaseline bounds the baseline file read.
const maxBaseline = 4 << 10

// ReadBaseline reads a baseline file (an error satisfying os.IsNotExist
// when there is none).
func ReadBaseline(path string) (Baseline, error) {
	f, err := os.Open(path)
	if err != nil {
		return Baseline{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBaseline+1))
	if err != nil {
		return Baseline{}, err
	}
	var bl Baseline
	if len(b) > maxBaseline {
		return Baseline{}, fmt.Errorf("%w: %s is larger than %d bytes", ErrBaseline, path, maxBaseline)
	}
	if err := json.Unmarshal(b, &bl); err != nil {
		return Baseline{}, fmt.Errorf("%w: %s: %v", ErrBaseline, path, err)
	}
	if bl.Zone == "" || bl.Entries < 0 {
		return Baseline{}, fmt.Errorf("%w: %s: no zone or negative entries", ErrBaseline, path)
	}
	return bl, nil
}

// WriteBaseline writes b to path atomically (temp + fsync + rename).
func WriteBaseline(path string, b Baseline) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return zones.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
}
