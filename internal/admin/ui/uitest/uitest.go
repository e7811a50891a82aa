// Package uitest drives the dashboard in a real headless Chromium. Its
// Scenario runs the same steps against whatever serves the admin routes: the
// ui package's own test runs it against a fake admin API, and a test holding
// a real broker can give it the broker's admin URL, token and hooks that act
// on the broker.
package uitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browsers are the names a Chromium goes by on PATH, Debian's first.
var browsers = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"}

// ChromiumPath returns the browser to drive: $MQTTD_CHROMIUM when set, else
// the first of browsers found on PATH.
func ChromiumPath() (string, error) {
	if p := os.Getenv("MQTTD_CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range browsers {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %s on PATH (and MQTTD_CHROMIUM not set)", strings.Join(browsers, ", "))
}

// NewBrowser starts a headless Chromium and returns a tab's context, valid
// for at most timeout; the browser goes when t ends. Without a Chromium the
// test skips, saying so, unless $CI is set: CI installs one, so there a
// missing browser fails the test.
func NewBrowser(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path, err := ChromiumPath()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Chromium to run the dashboard test: %v; install it (Debian: apt-get install chromium, as .ci/run does)", err)
		}
		t.Skipf("no Chromium, so the dashboard browser test skips: %v (Debian: apt-get install chromium)", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1000),
	)
	ctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancelTimeout() })
	// The first Do starts the browser; it must run on the tab's own context,
	// as cancelling the context of that first call would close the browser.
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	return tab
}

// Target is what Scenario drives: a served dashboard and hooks that act on
// what is behind it.
type Target struct {
	URL    string // the admin listener, e.g. http://127.0.0.1:9180
	Token  string // admin.token
	Plugin string // alias of an HTTP plugin whose breaker OpenBreaker opens
	Client string // a client id made of letters, digits and '-'

	Connect     func(t testing.TB)             // connects Client
	OpenBreaker func(t testing.TB)             // opens a breaker of Plugin
	Kicked      func(t testing.TB)             // returns once the kick of Client reached the broker
	Screenshot  func(t testing.TB, png []byte) // optional: keeps the screenshot beyond the test
	ChartPoints int                            // rate points charted before the screenshot; 0 means 5
	// WantText, optional, maps CSS selectors to the exact text the page
	// must come to show there once the breaker is open, for a target whose
	// numbers are known.
	WantText map[string]string
}

// Scenario loads the dashboard, types the token, sees Client connect and
// Plugin's breaker open, takes a screenshot (kept in t.ArtifactDir) and
// kicks Client from the page. Every wait has a generous deadline and waits
// for the page's DOM, never for a fixed time.
func Scenario(t *testing.T, tg Target) {
	tab := NewBrowser(t, 4*time.Minute)
	errs := watchErrors(tab)
	s := &scenario{t: t, tab: tab}

	s.step("the page asks for the token", chromedp.Navigate(tg.URL+"/ui/?refresh=500"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="need-token"]`)))
	s.step("the page loads with the token",
		chromedp.SendKeys(chromedp.CSS("#token"), tg.Token),
		chromedp.Click(chromedp.CSS("#token-use")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="ok"]`)))
	if kept := s.eval(`sessionStorage.getItem("mqttd.admin.token")`); kept != tg.Token {
		t.Errorf("sessionStorage holds token %q, want the one typed", kept)
	}

	tg.Connect(t)
	row := fmt.Sprintf(`#clients tr[data-client-id=%q]`, tg.Client)
	s.step("the client list shows "+tg.Client, chromedp.WaitVisible(chromedp.CSS(row)))
	s.poll("clients connected counts it", `Number(document.getElementById("clients-connected").textContent) >= 1`)

	panel := fmt.Sprintf(`[data-plugin=%q]`, tg.Plugin)
	s.step("plugin "+tg.Plugin+" shows closed breakers", chromedp.WaitVisible(chromedp.CSS(panel+`[data-breaker="closed"]`)))
	tg.OpenBreaker(t)
	s.step("plugin "+tg.Plugin+" shows its breaker open",
		chromedp.WaitVisible(chromedp.CSS(panel+`[data-breaker="open"] .breaker.open`)))
	s.poll("the plugin panel shows decision latency",
		fmt.Sprintf(`/p50 \d/.test(document.querySelector('%s [data-latency]').textContent)`, panel))
	for sel, want := range tg.WantText {
		s.poll(fmt.Sprintf("%s shows %q", sel, want), fmt.Sprintf(
			`(document.querySelector(%s) || {}).textContent === %s`, jsString(sel), jsString(want)))
	}
	points := max(tg.ChartPoints, 5)
	s.poll("message rates are computed and charted", fmt.Sprintf(
		`document.getElementById("rate-in").textContent !== "–" && Number(document.getElementById("chart").dataset.points) >= %d`, points))

	png, err := chromedp.Run(s.ctx(time.Minute), chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	keep := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(keep, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", keep)
	if tg.Screenshot != nil {
		tg.Screenshot(t, png)
	}

	// Clicked from JavaScript: a node chromedp found may be replaced by a
	// redraw before its mouse events arrive.
	s.poll("the kick button is clicked", fmt.Sprintf(
		`(() => { const b = document.querySelector(%s); if (!b || b.disabled) return false; b.click(); return true })()`,
		jsString(fmt.Sprintf(`button[data-kick=%q]`, tg.Client))))
	tg.Kicked(t)
	s.step(tg.Client+" leaves the client list", chromedp.WaitNotPresent(chromedp.CSS(row)))
	// The toast hides after a few seconds but keeps its text.
	if msg := s.eval(`document.getElementById("toast").textContent`); msg != "Kicked "+tg.Client {
		t.Errorf("toast says %q, want %q", msg, "Kicked "+tg.Client)
	}
	for _, e := range errs() {
		t.Errorf("page error: %s", e)
	}
}

type scenario struct {
	t   *testing.T
	tab context.Context
}

// ctx bounds one step (Poll's own 30 s default is off: this is the
// deadline); a deadline on the tab's context is fine after the
// browser started (see NewBrowser).
func (s *scenario) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(s.tab, d)
	s.t.Cleanup(cancel)
	return ctx
}

func (s *scenario) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	if err := chromedp.Do(s.ctx(90*time.Second), actions...); err != nil {
		s.t.Fatalf("%s: %v\npage: %s", what, err, s.describe())
	}
}

func (s *scenario) poll(what, predicate string) {
	s.t.Helper()
	if _, err := chromedp.Run(s.ctx(90*time.Second), chromedp.Poll[bool](predicate, chromedp.WithPollingTimeout(0))); err != nil {
		s.t.Fatalf("%s (%s): %v\npage: %s", what, predicate, err, s.describe())
	}
}

func (s *scenario) eval(expr string) string {
	s.t.Helper()
	v, err := chromedp.Run(s.ctx(30*time.Second), chromedp.Evaluate[string](expr))
	if err != nil {
		s.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// describe says what the page shows, for a failed step's message.
func (s *scenario) describe() string {
	v, err := chromedp.Run(s.ctx(10*time.Second), chromedp.Evaluate[string](
		`"state=" + document.body.dataset.state + " banner=" + JSON.stringify(document.getElementById("banner").textContent) + " text=" + JSON.stringify(document.querySelector("main").innerText.slice(0, 2000))`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return v
}

// watchErrors collects the page's uncaught exceptions and console errors.
func watchErrors(tab context.Context) func() []string {
	var mu sync.Mutex
	var seen []string
	err := chromedp.Listen(tab, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if e.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			msg = "console.error"
			for _, a := range e.Args {
				msg += " " + string(a.Value)
			}
		default:
			return
		}
		mu.Lock()
		seen = append(seen, msg)
		mu.Unlock()
	})
	if err != nil {
		seen = append(seen, errors.Join(errors.New("cannot watch the page for errors"), err).Error())
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}
