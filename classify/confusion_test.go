package classify

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/blowback-dnsbl/blowback/store"
)

// fixture is one labelled file: a README.md table row in a testdata
// directory ("| file | truth | mail-from | mta | source |").
type fixture struct {
	path, truth, mailFrom, mta, source string
}

// readFixtures reads the labels of dir's README.md and checks every .eml
// of dir has one.
func readFixtures(t *testing.T, dir string) []fixture {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fixture
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "|")
		if len(cols) < 7 || !strings.HasSuffix(strings.TrimSpace(cols[1]), ".eml") {
			continue
		}
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		fx := fixture{path: filepath.Join(dir, cols[1]), truth: cols[2], mailFrom: cols[3], mta: cols[4], source: cols[5]}
		if fx.mailFrom == "-" {
			fx.mailFrom = ""
		}
		if fx.mta == "-" {
			fx.mta = ""
		}
		if _, err := store.ParseKind(fx.truth); err != nil {
			t.Errorf("%s: truth %q: %v", fx.path, fx.truth, err)
		}
		if fx.source == "" {
			t.Errorf("%s: no source in README.md", fx.path)
		}
		seen[cols[1]] = true
		out = append(out, fx)
	}
	emls, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	for _, e := range emls {
		if !seen[filepath.Base(e)] {
			t.Errorf("%s has no line in %s/README.md", e, dir)
		}
	}
	return out
}

// TestConfusion classifies every labelled fixture (testdata and
// testdata/gen) with its envelope and prints the per-kind confusion table
// (rows: truth, columns: our kind) as docs/classifier.md shows it. It fails
// on any false positive (a message that is not backscatter classified as
// backscatter), on a backscatter message classified as anything else, and
// on a wrong MTA family.
func TestConfusion(t *testing.T) {
	var all []fixture
	for _, d := range []string{"testdata", filepath.Join("testdata", "gen")} {
		all = append(all, readFixtures(t, d)...)
	}
	kinds := []store.Kind{store.KindBounce, store.KindAutoreply, store.KindChallenge, store.KindMDN, store.KindReport, store.KindSpam, store.KindOther}
	matrix := map[string]map[string]int{}
	var fp, fn, mtaOK, mtaWant, notBS, bs, envFP, envRuns int
	for _, fx := range all {
		b, err := os.ReadFile(fx.path)
		if err != nil {
			t.Fatal(err)
		}
		env := Envelope{Rcpts: []string{"trap-forged@trap.blowback.test"}, TrapDomains: []string{"trap.blowback.test"}}
		if fx.mailFrom != "" {
			f := strings.Trim(fx.mailFrom, "<>")
			env.MailFrom, env.Null, env.Known = f, f == "", true
		}
		r := classify(b, env)
		truth, _ := store.ParseKind(fx.truth)
		if matrix[fx.truth] == nil {
			matrix[fx.truth] = map[string]int{}
		}
		matrix[fx.truth][r.Kind.String()]++
		switch {
		case !truth.Backscatter():
			notBS++
			if r.Kind.Backscatter() {
				fp++
				t.Errorf("FALSE POSITIVE %s (%s): got %s/%s signals=%v", fx.path, fx.source, r.Kind, r.SubKind, r.Signals)
			}
		default:
			bs++
			if r.Kind != truth {
				fn++
				t.Errorf("MISS %s (%s): got %s/%s, want %s; signals=%v", fx.path, fx.source, r.Kind, r.SubKind, truth, r.Signals)
			}
		}
		// Spam may come with any reverse-path: a not-backscatter message
		// stays so under the envelopes that count as signs of software.
		if !truth.Backscatter() {
			for _, mf := range []string{"", "postmaster@sender.example", "someone@trap.blowback.test"} {
				e := env
				e.MailFrom, e.Null, e.Known = mf, mf == "", true
				envRuns++
				if r2 := classify(b, e); r2.Kind.Backscatter() {
					envFP++
					t.Errorf("FALSE POSITIVE with MAIL FROM:<%s> %s: got %s/%s signals=%v", mf, fx.path, r2.Kind, r2.SubKind, r2.Signals)
				}
			}
		}
		if fx.mta != "" {
			mtaWant++
			if r.MTA == fx.mta {
				mtaOK++
			} else {
				t.Errorf("%s: mta %q (%s), want %q", fx.path, r.MTA, r.MTASignal, fx.mta)
			}
		}
	}
	var sb strings.Builder
	sb.WriteString("| truth \\ got |")
	for _, k := range kinds {
		sb.WriteString(" " + k.String() + " |")
	}
	sb.WriteString(" files |\n| --- |")
	for range kinds {
		sb.WriteString(" ---: |")
	}
	sb.WriteString(" ---: |\n")
	rows := make([]string, 0, len(matrix))
	for k := range matrix {
		rows = append(rows, k)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, _ := store.ParseKind(rows[i])
		b, _ := store.ParseKind(rows[j])
		if a.Backscatter() != b.Backscatter() {
			return a.Backscatter()
		}
		return rows[i] < rows[j]
	})
	for _, row := range rows {
		n := 0
		fmt.Fprintf(&sb, "| **%s** |", row)
		for _, k := range kinds {
			c := matrix[row][k.String()]
			n += c
			if c == 0 {
				sb.WriteString(" · |")
			} else {
				fmt.Fprintf(&sb, " %d |", c)
			}
		}
		fmt.Fprintf(&sb, " %d |\n", n)
	}
	t.Logf("confusion over %d fixtures (%d backscatter, %d not):\n%s", len(all), bs, notBS, sb.String())
	t.Logf("false positives %d of %d not-backscatter; backscatter of the wrong kind %d of %d; mta right %d of %d expected",
		fp, notBS, fn, bs, mtaOK, mtaWant)
	t.Logf("the not-backscatter set again with a null, a postmaster and a trap-domain reverse-path: %d false positives in %d runs", envFP, envRuns)
	if notBS < 100 {
		t.Errorf("only %d not-backscatter fixtures; want at least 100", notBS)
	}
}
