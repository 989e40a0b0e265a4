package classify

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// corpusMTA is the family the sisimai file names ("lhost-postfix-12.eml":
// written by Postfix) say wrote a bounce; "" for names that are not a
// software family (sisimai's x1..x6, rhost-* which name the remote site).
func corpusMTA(name string) string {
	if !strings.HasPrefix(name, "lhost-") {
		return ""
	}
	fam := strings.TrimPrefix(strings.TrimSuffix(name, filepath.Ext(name)), "lhost-")
	if i := strings.LastIndexByte(fam, '-'); i > 0 {
		fam = fam[:i]
	}
	switch fam {
	case "postfix", "exim", "sendmail", "qmail", "gmail", "yahoo", "opensmtpd", "courier", "domino",
		"amazonses", "mcafee", "amavis", "barracuda", "mimecast", "messagingserver", "mailru", "powermta":
		return fam
	case "v5sendmail":
		return "sendmail"
	case "receivingses":
		return "amazonses"
	case "exchange2003", "exchange2007", "office365", "outlook":
		return "exchange"
	case "notes":
		return "domino"
	case "trendmicro":
		return "interscan"
	case "imailserver":
		return "imail"
	case "dragonfly":
		return "dma"
	}
	return ""
}

// TestMTACorpus: on the sisimai files whose name says which software wrote
// them, the fingerprint names that family or nothing; it never names a
// wrong one. Prints the per-family table.
func TestMTACorpus(t *testing.T) {
	files := loadCorpus(t)
	type row struct{ files, right, none, wrong int }
	table := map[string]*row{}
	var wrong []string
	named := 0
	for _, f := range files {
		_, name, _ := strings.Cut(f.rel, "/")
		r := classify(f.data, Envelope{})
		if r.MTA != "" {
			named++
			if MTALabel(r.MTA) == "other" {
				t.Errorf("%s: mta %q is not in MTAFamilies", f.rel, r.MTA)
			}
		}
		want := corpusMTA(name)
		if want == "" {
			continue
		}
		rw := table[want]
		if rw == nil {
			rw = &row{}
			table[want] = rw
		}
		rw.files++
		switch r.MTA {
		case want:
			rw.right++
		case "exim":
			if want == "mailru" { // Mail.ru runs an Exim of its own
				rw.right++
				break
			}
			fallthrough
		default:
			rw.wrong++
			wrong = append(wrong, fmt.Sprintf("%s: got %s (%s), want %s", f.rel, r.MTA, r.MTASignal, want))
		case "":
			rw.none++
		}
	}
	var fams []string
	for k := range table {
		fams = append(fams, k)
	}
	sort.Strings(fams)
	var total row
	for _, k := range fams {
		rw := table[k]
		t.Logf("%-16s files %3d  right %3d  unknown %3d  wrong %3d", k, rw.files, rw.right, rw.none, rw.wrong)
		total.files += rw.files
		total.right += rw.right
		total.none += rw.none
		total.wrong += rw.wrong
	}
	t.Logf("%-16s files %3d  right %3d  unknown %3d  wrong %3d; mta named for %d of %d corpus files", "all", total.files, total.right, total.none, total.wrong, named, len(files))
	for _, w := range wrong {
		t.Logf("WRONG %s", w)
	}
	if total.wrong*100 > total.files {
		t.Errorf("%d of %d named a wrong family (more than 1%%)", total.wrong, total.files)
	}
	if total.right*100 < 95*total.files {
		t.Errorf("only %d of %d named right (want 95%%)", total.right, total.files)
	}
}
