package web

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/blowback-dnsbl/blowback/internal/testenv"
	"github.com/blowback-dnsbl/blowback/store"
)

// A small client for the Chrome DevTools Protocol over its websocket:
// enough to load pages, run a line of script, click, and take screenshots
// in headless Debian chromium.

type cdp struct {
	t      *testing.T
	ws     *websocket.Conn
	mu     sync.Mutex
	nextID int
	calls  map[int]chan cdpMsg
	events chan cdpMsg
}

type cdpMsg struct {
	ID     int             `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// startChromium runs headless chromium with a fresh profile and returns a
// client attached to a new page. Everything stops at the test's end.
func startChromium(t *testing.T) *cdp {
	t.Helper()
	bin := testenv.Tool(t, "chromium")
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--force-color-profile=srgb",
		"--user-data-dir="+profile, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--remote-allow-origins=http://127.0.0.1", "--window-size=1024,768", "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, _ := os.Create(filepath.Join(profile, "chromium.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // chromium and its helpers, by our process group
		cmd.Wait()
		logf.Close()
	})
	// Chromium writes the port it bound to DevToolsActivePort (readiness).
	var port string
	deadline := time.Now().Add(60 * time.Second)
	for port == "" {
		if b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort")); err == nil {
			if line, _, _ := strings.Cut(string(b), "\n"); line != "" {
				port = line
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(profile, "chromium.log"))
			t.Fatalf("chromium did not start its DevTools server:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest("PUT", "http://127.0.0.1:"+port+"/json/new?about:blank", nil)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var target struct {
		WS string `json:"webSocketDebuggerUrl"`
	}
	err = json.NewDecoder(resp.Body).Decode(&target)
	resp.Body.Close()
	if err != nil || target.WS == "" {
		t.Fatalf("new target: %v %+v", err, target)
	}
	cfg, err := websocket.NewConfig(target.WS, "http://127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ws.MaxPayloadBytes = 64 << 20
	c := &cdp{t: t, ws: ws, calls: map[int]chan cdpMsg{}, events: make(chan cdpMsg, 256)}
	go c.read()
	t.Cleanup(func() { ws.Close() })
	c.call("Page.enable", nil, nil)
	c.call("Runtime.enable", nil, nil)
	return c
}

func (c *cdp) read() {
	for {
		var m cdpMsg
		if err := websocket.JSON.Receive(c.ws, &m); err != nil {
			close(c.events)
			c.mu.Lock()
			for id, ch := range c.calls {
				close(ch)
				delete(c.calls, id)
			}
			c.mu.Unlock()
			return
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.calls[m.ID]
			delete(c.calls, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		select {
		case c.events <- m:
		default: // nobody waits for this event
		}
	}
}

func (c *cdp) call(method string, params any, out any) {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpMsg, 1)
	c.calls[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if err := websocket.JSON.Send(c.ws, msg); err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			c.t.Fatalf("%s: connection closed", method)
		}
		if m.Error != nil {
			c.t.Fatalf("%s: %s", method, m.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(m.Result, out); err != nil {
				c.t.Fatalf("%s: %v", method, err)
			}
		}
	case <-time.After(60 * time.Second):
		c.t.Fatalf("%s: no answer", method)
	}
}

// drain forgets events seen so far.
func (c *cdp) drain() {
	for {
		select {
		case <-c.events:
		default:
			return
		}
	}
}

// waitLoad waits for the page's load event.
func (c *cdp) waitLoad() {
	c.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-c.events:
			if !ok {
				c.t.Fatal("connection closed")
			}
			if m.Method == "Page.loadEventFired" {
				return
			}
		case <-timeout:
			c.t.Fatal("page did not load")
		}
	}
}

func (c *cdp) navigate(url string) {
	c.t.Helper()
	c.drain()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	c.call("Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		c.t.Fatalf("navigate %s: %s", url, res.ErrorText)
	}
	c.waitLoad()
}

// eval runs expr in the page and returns its value.
func (c *cdp) eval(expr string) any {
	c.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.Exception != nil {
		c.t.Fatalf("eval %q: %s", expr, res.Exception.Text)
	}
	return res.Result.Value
}

// a11y checks what every page needs: lang, one h1, labelled controls,
// headings that do not skip a level.
func (c *cdp) a11y(page string) {
	c.t.Helper()
	if v := c.eval(`document.documentElement.lang`); v != "en" {
		c.t.Errorf("%s: lang %v", page, v)
	}
	if v := c.eval(`document.querySelectorAll("h1").length`); v != 1.0 {
		c.t.Errorf("%s: %v h1 elements", page, v)
	}
	if v := c.eval(`[...document.querySelectorAll("input:not([type=hidden]), textarea, select")].filter(e => !e.labels || e.labels.length == 0).length`); v != 0.0 {
		c.t.Errorf("%s: %v form controls without a label", page, v)
	}
	if v := c.eval(`(() => { let last = 1; for (const h of document.querySelectorAll("main h1, main h2, main h3, main h4")) { const l = +h.tagName[1]; if (l > last + 1) return h.textContent; last = l; } return ""; })()`); v != "" {
		c.t.Errorf("%s: heading %q skips a level", page, v)
	}
}

func (c *cdp) text() string {
	c.t.Helper()
	s, _ := c.eval("document.body.innerText").(string)
	return s
}

// screenshot writes the whole page at width CSS pixels as a PNG in the
// artifact folder.
func (c *cdp) screenshot(name string, width int, mobile bool) string {
	c.t.Helper()
	c.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile}, nil)
	h, _ := c.eval("Math.ceil(document.documentElement.scrollHeight)").(float64)
	h = max(min(h, 6000), 200)
	c.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": int(h), "deviceScaleFactor": 1, "mobile": mobile}, nil)
	var res struct {
		Data string `json:"data"`
	}
	c.call("Page.captureScreenshot", map[string]any{"format": "png"}, &res)
	b, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil || len(b) < 1000 {
		c.t.Fatalf("screenshot %s: %d bytes, %v", name, len(b), err)
	}
	dir := artifactDir(c.t)
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("screenshot %s", p)
	return p
}

// artifactDir is $BLOWBACK_ARTIFACTS or <repo>/artifacts (gitignored).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BLOWBACK_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(testenv.Root(t), "artifacts")
	}
	dir = filepath.Join(dir, "web")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowser drives the pages in headless chromium: a listed and an
// unlisted lookup, the delist form (a real form submission with the
// browser's own cookie, token and Origin), and the status chart.
func TestBrowser(t *testing.T) {
	now := time.Now().UTC()
	e := newEnvWith(t, func(c *Config) { c.Title = "Example backscatter list" }, func(e *env) {
		for i, k := range []store.Kind{store.KindBounce, store.KindBounce, store.KindAutoreply, store.KindCallout, store.KindMDN} {
			e.hit("192.0.2.44", k, now.Add(-time.Duration(5*i+1)*time.Hour), fmt.Sprintf("trapuser%d@trap.blowback.test", i), fmt.Sprintf("orig%d@spam.example", i))
		}
		for i := range 40 {
			kinds := []store.Kind{store.KindBounce, store.KindAutoreply, store.KindChallenge, store.KindCallout, store.KindMDN}
			e.hit(fmt.Sprintf("198.51.100.%d", i), kinds[i%5], now.Add(-time.Duration(i*i%47)*time.Hour), "x@trap.blowback.test", fmt.Sprint(i))
			e.hit(fmt.Sprintf("203.0.113.%d", i), store.KindBounce, now.Add(-time.Duration(24*(i%25)+3)*time.Hour), "y@trap.blowback.test", fmt.Sprint(i))
		}
	})
	e.waitCounted()
	b := startChromium(t)

	// Listed.
	b.navigate(e.base + "/lookup?ip=192.0.2.44")
	txt := b.text()
	for _, want := range []string{"192.0.2.44 is listed", "127.0.0.2", "127.0.0.3", "127.0.0.4", "What to look for in your own logs",
		"…@trap.blowback.test", "Remove 192.0.2.44 from the list"} {
		if !strings.Contains(txt, want) {
			t.Errorf("listed page lacks %q", want)
		}
	}
	if strings.Contains(txt, "trapuser") {
		t.Error("listed page shows a trap local part")
	}
	if v := b.eval(`getComputedStyle(document.querySelector("header.site")).backgroundColor`); v != "rgb(29, 53, 87)" {
		t.Errorf("stylesheet not applied: header background %v", v)
	}
	b.a11y("lookup listed")
	b.screenshot("lookup-listed", 1024, false)
	b.screenshot("lookup-listed-mobile", 390, true)
	if v := b.eval(`document.documentElement.scrollWidth <= window.innerWidth`); v != true {
		t.Errorf("the lookup page scrolls sideways at 390 px")
	}
	b.call("Emulation.clearDeviceMetricsOverride", nil, nil)

	// Unlisted, through the form on the front page.
	b.navigate(e.base + "/")
	b.a11y("index")
	b.drain()
	b.eval(`document.getElementById("ip").value = "192.0.2.45"; document.querySelector("form.lookup button").click()`)
	b.waitLoad()
	if txt := b.text(); !strings.Contains(txt, "192.0.2.45 is not listed") || strings.Contains(txt, "Remove 192.0.2.45") {
		t.Errorf("unlisted page:\n%s", txt)
	}
	b.a11y("lookup unlisted")
	b.screenshot("lookup-unlisted", 1024, false)
	b.call("Emulation.clearDeviceMetricsOverride", nil, nil)

	// Delist: an empty reason is stopped by the browser (required); a
	// reason submits, the server redirects, the page says it is done.
	b.navigate(e.base + "/lookup?ip=192.0.2.44")
	if v := b.eval(`document.getElementById("reason").checkValidity()`); v != false {
		t.Error("empty reason accepted by the form")
	}
	b.drain()
	b.eval(`document.getElementById("reason").value = "Fixed: we now reject unknown recipients at RCPT time."; document.querySelector("form[action='/delist'] button").click()`)
	b.waitLoad()
	if url, _ := b.eval(`location.pathname + location.search`).(string); url != "/lookup?ip=192.0.2.44&done=delisted" {
		t.Errorf("after the delist form: at %s", url)
	}
	txt = b.text()
	if !strings.Contains(txt, "has been removed from the list") || !strings.Contains(txt, "192.0.2.44 is not listed") {
		t.Errorf("after delist:\n%s", txt)
	}
	if e.cur.Load().Lookup(netip.MustParseAddr("192.0.2.44")) != 0 {
		t.Error("192.0.2.44 still in the zone after the form delist")
	}
	b.a11y("delist done")
	b.screenshot("delist-done", 1024, false)
	b.call("Emulation.clearDeviceMetricsOverride", nil, nil)

	// Status with its chart.
	b.navigate(e.base + "/status")
	if n := b.eval(`document.querySelectorAll("svg.chart rect").length`); n.(float64) < 20 {
		t.Errorf("status chart has %v bars", n)
	}
	if w := b.eval(`document.getElementById("hourly").getBoundingClientRect().width`); w.(float64) < 300 {
		t.Errorf("chart rendered %v px wide", w)
	}
	if txt := b.text(); !strings.Contains(txt, "Trap hits per hour") || !strings.Contains(txt, "bounce:") {
		t.Errorf("status page:\n%s", txt)
	}
	b.a11y("status")
	b.screenshot("status", 1024, false)
	b.screenshot("status-mobile", 390, true)
}
