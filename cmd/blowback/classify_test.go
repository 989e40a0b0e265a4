package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestClassifyJSONMTA: `classify --json` carries mta (CONTRACT additions
// 2026-12): the family for a real Exim bounce, "" (present, empty) for a
// message whose format names none.
func TestClassifyJSONMTA(t *testing.T) {
	dir := filepath.Join("..", "..", "classify", "testdata")
	code, out, errOut := runCLI(t, "classify", "--json", "--mail-from", "<>",
		filepath.Join(dir, "exim-real-bounce.eml"), filepath.Join(dir, "human-reply.eml"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", out)
	}
	for i, want := range []string{"exim", ""} {
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatal(err)
		}
		got, ok := m["mta"]
		if !ok || got != want {
			t.Errorf("line %d: mta %v (present %v), want %q", i, got, ok, want)
		}
	}
}
