package classify

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// corpusExpectation is what a file of the sisimai set must become: arf-* are
// feedback reports, rfc3834-* auto-replies, every other bounce a bounce, and
// not-bounces are not backscatter.
func corpusExpectation(dir, name string) (store.Kind, bool) {
	switch {
	case dir == "not-bounces":
		return store.KindOther, false
	case strings.HasPrefix(name, "arf-"):
		return store.KindReport, false
	case strings.HasPrefix(name, "rfc3834-"):
		return store.KindAutoreply, true
	}
	return store.KindBounce, true
}

// corpusDisagreements are files whose folder in the sisimai set says one
// thing and whose content another; each is listed in the output, counted
// as a miss only if the classifier does not give the kind named here.
var corpusDisagreements = map[string]struct {
	kind   store.Kind
	reason string
}{
	// A notification from postmaster@ with a null Return-Path, "an email you
	// sent was rejected ... Mailbox full" and the bounced message inline: a
	// bounce by every measure. sisimai files it under not-bounces because
	// its parsers find no format they know (the file is named after the
	// rb-sisimai issue it came from).
	"not-bounces/rb-issue-368-bug.eml": {store.KindBounce, "a real bounce filed under not-bounces by sisimai"},
	// An Amazon SES notification of type "Complaint": feedback, not a
	// delivery report.
	"bounces/lhost-amazonses-11.eml": {store.KindReport, "an SES complaint notification (feedback), filed under bounces"},
}

type corpusFile struct {
	rel  string
	data []byte
}

func loadCorpus(t testing.TB) []corpusFile {
	t.Helper()
	root := testenv.Shared(t, "corpus/sisimai")
	var files []corpusFile
	for _, dir := range []string{"bounces", "not-bounces"} {
		names, err := filepath.Glob(filepath.Join(root, dir, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(names)
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, corpusFile{rel: dir + "/" + filepath.Base(n), data: b})
		}
	}
	if len(files) == 0 {
		testenv.Missing(t, "corpus/sisimai has no .eml files")
	}
	return files
}

func TestClassifyCorpus(t *testing.T) {
	files := loadCorpus(t)
	type row struct{ files, backscatterOK, kindOK int }
	table := map[string]*row{}
	got := map[store.Kind]int{}
	var bounces, bouncesOK, rawBouncesOK, kindOK, notBounces, notBouncesOK, rawNotBouncesOK int
	var misses, notes []string
	for _, f := range files {
		dir, name, _ := strings.Cut(f.rel, "/")
		want, wantBS := corpusExpectation(dir, name)
		r := classify(f.data, Envelope{})
		got[r.Kind]++
		family := strings.TrimSuffix(name, filepath.Ext(name))
		if i := strings.LastIndexByte(family, '-'); i > 0 {
			family = family[:i]
		}
		if dir == "not-bounces" {
			family = "(not-bounces)"
		}
		rw := table[family]
		if rw == nil {
			rw = &row{}
			table[family] = rw
		}
		rw.files++
		line := fmt.Sprintf("%s: got %s/%s signals=%s", f.rel, r.Kind, r.SubKind, strings.Join(r.Signals, ","))
		// As the folders label it, before the disagreements below.
		if r.Kind.Backscatter() == wantBS && (want != store.KindReport || r.Kind == store.KindReport) {
			if dir == "bounces" {
				rawBouncesOK++
			} else {
				rawNotBouncesOK++
			}
		}
		if d, ok := corpusDisagreements[f.rel]; ok {
			notes = append(notes, fmt.Sprintf("%s (%s; want %s)", line, d.reason, d.kind))
			want, wantBS = d.kind, d.kind.Backscatter()
		}
		bsOK := r.Kind.Backscatter() == wantBS
		kOK := r.Kind == want || want == store.KindOther && !r.Kind.Backscatter()
		if bsOK {
			rw.backscatterOK++
		}
		if kOK {
			rw.kindOK++
		}
		switch dir {
		case "bounces":
			bounces++
			if bsOK {
				bouncesOK++
			}
		default:
			notBounces++
			if bsOK {
				notBouncesOK++
			}
		}
		if kOK {
			kindOK++
		}
		if !bsOK || !kOK {
			misses = append(misses, fmt.Sprintf("%s (want %s)", line, want))
		}
	}

	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "family\tfiles\tbackscatter ok\tkind ok\t")
	fams := make([]string, 0, len(table))
	for k := range table {
		fams = append(fams, k)
	}
	sort.Strings(fams)
	for _, k := range fams {
		rw := table[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", k, rw.files, rw.backscatterOK, rw.kindOK)
	}
	tw.Flush()
	t.Logf("per family:\n%s", sb.String())
	var kinds []string
	for k, n := range got {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("kinds: %s", strings.Join(kinds, " "))
	for _, n := range notes {
		t.Logf("disagreement: %s", n)
	}
	for _, m := range misses {
		t.Logf("MISS %s", m)
	}
	pct := 100 * float64(bouncesOK) / float64(max(bounces, 1))
	rawPct := 100 * float64(rawBouncesOK) / float64(max(bounces, 1))
	t.Logf("as labelled by folder: bounces/ %d of %d as expected (%.2f%%), not-bounces/ %d of %d not backscatter",
		rawBouncesOK, bounces, rawPct, rawNotBouncesOK, notBounces)
	t.Logf("with the %d disagreements: bounces/ %d of %d (%.2f%%); exact kind %d of %d; not-bounces/ %d of %d not backscatter",
		len(corpusDisagreements), bouncesOK, bounces, pct, kindOK, len(files), notBouncesOK, notBounces)
	if rawPct < 99 {
		t.Errorf("bounces/: %.2f%% < 99%% classified as backscatter (arf-* as report)", rawPct)
	}
	if notBouncesOK != notBounces {
		t.Errorf("not-bounces/: %d of %d classified as backscatter", notBounces-notBouncesOK, notBounces)
	}
	if kpct := 100 * float64(kindOK) / float64(len(files)); kpct < 97 {
		t.Errorf("exact kind right for %.2f%% < 97%% of the corpus", kpct)
	}
}
