package consumers

import (
	"io/fs"
	"strings"
	"testing"
)

// Every file in the folder is shown on the card, with the zone replaced.
func TestSnippets(t *testing.T) {
	got := map[string]bool{}
	for _, s := range Snippets("bl.example.org") {
		got[s.File] = true
		orig, _ := files.ReadFile(s.File)
		if strings.Contains(s.Text, ExampleZone) || strings.Contains(string(orig), ExampleZone) != strings.Contains(s.Text, "bl.example.org") {
			t.Errorf("%s: zone not replaced", s.File)
		}
	}
	fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if !d.IsDir() && !got[p] {
			t.Errorf("%s is embedded but not listed in titles", p)
		}
		return nil
	})
	if len(got) != len(titles) {
		t.Errorf("%d snippets, want %d", len(got), len(titles))
	}
}
