package testenv

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Exim is a throwaway Exim: Debian's exim4 binary (installed, or unpacked
// from its .deb with dpkg -x, so it does not conflict with Postfix) with a
// configuration, spool and log of its own, running as an unprivileged
// user of its own (nobody).
type Exim struct {
	Bin    string // the exim4 binary
	Dir    string // configuration, spool and log live here
	Config string // the configuration file
	// mounts are bind-mounted over the host's files in a mount namespace
	// of Exim's own for every run: a passwd and group naming Debian's
	// compiled-in exim user when the host has none (Exim looks it up at
	// start even when the configuration sets exim_user).
	mounts map[string]string
}

// command is e's argv with args, in a mount namespace with e.mounts and
// extra (when there are any).
func (e *Exim) command(t testing.TB, extra map[string]string, args ...string) []string {
	t.Helper()
	files := maps.Clone(e.mounts)
	if files == nil {
		files = map[string]string{}
	}
	maps.Copy(files, extra)
	argv := append([]string{e.Bin}, args...)
	if len(files) == 0 {
		return argv
	}
	return BindMounted(t, files, argv...)
}

// eximUserFiles returns passwd and group files for Exim's namespace when
// the host lacks Debian's compiled-in exim user (Debian-exim, mapped to
// nobody there); nil when the host has it.
func eximUserFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	const name = "Debian-exim"
	_, uerr := user.Lookup(name)
	_, gerr := user.LookupGroup(name)
	if uerr == nil && gerr == nil {
		return nil
	}
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		Missing(t, "no /etc/passwd to give Exim its user: "+err.Error())
	}
	group, err := os.ReadFile("/etc/group")
	if err != nil {
		Missing(t, "no /etc/group to give Exim its user: "+err.Error())
	}
	if uerr != nil {
		passwd = append(passwd, name+":x:65534:65534::/nonexistent:/usr/sbin/nologin\n"...)
	}
	if gerr != nil {
		group = append(group, name+":x:65534:\n"...)
	}
	files := map[string]string{"/etc/passwd": filepath.Join(dir, "passwd"), "/etc/group": filepath.Join(dir, "group")}
	for target, b := range map[string][]byte{"/etc/passwd": passwd, "/etc/group": group} {
		if err := os.WriteFile(files[target], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// EximBinary finds an exim4 binary: $BLOWBACK_EXIM, exim4 on PATH or in
// /usr/sbin, else Debian's exim4-daemon-light .deb unpacked with dpkg -x
// (the .deb is looked for in $BLOWBACK_EXIM_DEBS, the repository root, the
// directory above it and /work/main). None: the test skips (fails in CI).
func EximBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BLOWBACK_EXIM"); p != "" {
		return p
	}
	for _, p := range []string{"exim4", "/usr/sbin/exim4"} {
		if q, err := exec.LookPath(p); err == nil {
			return q
		}
	}
	debs := EximDebs(t, "exim4-daemon-light")
	if debs == nil {
		Missing(t, "no exim4 (install exim4-daemon-light, or put its .deb in the repository root or $BLOWBACK_EXIM_DEBS)")
		return ""
	}
	root := t.TempDir()
	Unpack(t, root, debs...)
	bin := filepath.Join(root, "usr", "sbin", "exim4")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s holds no usr/sbin/exim4: %v", debs[0], err)
	}
	return bin
}

// Unpack unpacks the files of the Debian packages debs into dir (dpkg -x:
// nothing is installed).
func Unpack(t testing.TB, dir string, debs ...string) {
	t.Helper()
	dpkg := Tool(t, "dpkg")
	for _, deb := range debs {
		if out, err := exec.Command(dpkg, "-x", deb, dir).CombinedOutput(); err != nil {
			t.Fatalf("dpkg -x %s: %v\n%s", deb, err, out)
		}
	}
}

// EximDebDirs are the directories the Exim .debs are looked for in, in
// order: $BLOWBACK_EXIM_DEBS (.ci/run downloads them there with apt-get
// download), the repository root, the directory above it, /work/main.
func EximDebDirs(t testing.TB) []string {
	var dirs []string
	if d := os.Getenv("BLOWBACK_EXIM_DEBS"); d != "" {
		dirs = append(dirs, d)
	}
	return append(dirs, Root(t), filepath.Join(Root(t), ".."), "/work/main")
}

// EximDebs finds Debian's Exim packages by name (exim4-base,
// exim4-daemon-light, ...): the newest .deb of each, from the first of
// EximDebDirs that holds them all; nil when none does.
func EximDebs(t testing.TB, names ...string) []string {
	t.Helper()
	for _, dir := range EximDebDirs(t) {
		var debs []string
		for _, name := range names {
			if m, _ := filepath.Glob(filepath.Join(dir, name+"_*.deb")); len(m) > 0 {
				debs = append(debs, m[len(m)-1])
			}
		}
		if len(debs) == len(names) {
			return debs
		}
	}
	return nil
}

// NewExim sets up an Exim whose configuration is body (options, then
// "begin acl" and the rest) after a header that gives it its own spool,
// log, user and host name. It needs root (Exim takes -C from root only
// without dropping privilege) and skips otherwise.
func NewExim(t testing.TB, body string) *Exim {
	t.Helper()
	NeedRoot(t, "the Exim tests need root (exim -C with a private configuration)")
	bin := EximBinary(t)
	usr, grp := "nobody", "nogroup"
	if _, err := user.Lookup(usr); err != nil {
		Missing(t, "no user nobody for Exim to run as")
	}
	if _, err := user.LookupGroup(grp); err != nil {
		grp = "nobody"
	}
	dir := t.TempDir()
	for _, d := range []string{"spool", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, d), 0o777)
	}
	// Exim runs as nobody: it must reach its spool through t.TempDir's
	// private (0700) directories.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	conf := fmt.Sprintf(`exim_user = %s
exim_group = %s
primary_hostname = mx.exim.test
spool_directory = %s
log_file_path = %s/%%slog
`, usr, grp, filepath.Join(dir, "spool"), filepath.Join(dir, "log")) + body
	path := filepath.Join(dir, "exim.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &Exim{Bin: bin, Dir: dir, Config: path, mounts: eximUserFiles(t, dir)}
	argv := e.command(t, nil, "-C", path, "-bV")
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("exim -bV rejects the configuration: %v\n%s", err, out)
	}
	return e
}

// HostCheck runs `exim -bh ip`: an SMTP session as if from ip, with every
// ACL run for real and nothing delivered. dialogue is what the client
// sends (CRLF line ends are added); stdout holds the server's replies,
// stderr Exim's account of each ACL step. When nameserver is set (an IPv4
// address serving DNS on port 53), Exim's resolver is pointed at it by a
// resolv.conf bind-mounted over /etc/resolv.conf in a mount namespace of
// its own (unshare -m), which only this Exim sees (WithResolver).
func (e *Exim) HostCheck(t testing.TB, ip, nameserver string, dialogue ...string) (stdout, stderr string) {
	t.Helper()
	var extra map[string]string
	if nameserver != "" {
		extra = map[string]string{"/etc/resolv.conf": ResolvConf(t, e.Dir, nameserver)}
	}
	args := e.command(t, extra, "-C", e.Config, "-bh", ip)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(strings.Join(dialogue, "\r\n") + "\r\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil && out.Len() == 0 {
		t.Fatalf("exim -bh %s: %v\n%s", ip, err, errb.String())
	}
	return out.String(), errb.String()
}
