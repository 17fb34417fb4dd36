package integration

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
)

// The Temporal Web UI, as an operator sees it in a headless Chromium: in the workflow list a
// delivery that gave up reads Failed, apart from the one that succeeded after a retry, and its page
// shows why. Skipped without Chromium. With HOOKD_SCREENSHOTS=1 the screenshots are written to
// docs/ for the README (otherwise to a temporary directory).
func TestWebUIShowsFailedDeliveries(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no Chromium: apt-get install chromium")
	}
	cli, err := testenv.TemporalCLI()
	if err != nil {
		t.Skip(err)
	}
	// A dev server of its own, with its Web UI (the shared one is headless).
	_, uiPort, _ := net.SplitHostPort(freePort(t))
	attrs := make([]temporal.SearchAttributeUpdate, 0, len(testenv.SearchAttributes))
	for _, n := range testenv.SearchAttributes {
		attrs = append(attrs, temporal.NewSearchAttributeKeyKeyword(n).ValueSet(""))
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(sctx, testsuite.DevServerOptions{ExistingPath: cli, LogLevel: "error", EnableUI: true,
		UIPort: uiPort, SearchAttributes: temporal.NewSearchAttributes(attrs...),
		ClientOptions: &client.Options{Namespace: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ui := "http://127.0.0.1:" + uiPort

	s := newStack(t, func(c *config.Config) { c.TemporalAddress = srv.FrontendHostPort(); c.TemporalUIURL = ui })
	app := s.newApp("web ui")
	down := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) { return 503, nil, "maintenance" })
	t.Cleanup(down.Close)
	flaky := testenv.NewReceiver(func(n int, _ *http.Request) (int, http.Header, string) {
		if n == 1 {
			return 500, nil, "oops"
		}
		return 200, nil, "ok"
	})
	t.Cleanup(flaky.Close)
	policy := map[string]any{"initialIntervalMs": 200, "maxAttempts": 3}
	s.subscribe(app.Key, map[string]any{"url": down.URL + "/hooks", "eventTypes": []string{"order.created"}, "retryPolicy": policy})
	s.subscribe(app.Key, map[string]any{"url": flaky.URL + "/hooks", "eventTypes": []string{"order.created"}, "retryPolicy": policy})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "order-1001", "type": "order.created",
		"data": map[string]any{"orderId": 1001}}), http.StatusCreated)
	ds := s.waitDeliveries(app.Key, "order-1001", 2, 30*time.Second)
	var failedLink string
	for _, d := range ds {
		if d["status"] == "failed" {
			failedLink = s.delivery(app.Key, d["id"].(string))["links"].(map[string]any)["temporalUi"].(string)
		}
	}
	if failedLink == "" || !strings.HasPrefix(failedLink, ui+"/namespaces/default/workflows/delivery%2F") {
		t.Fatalf("deliveries %v, link to the failed one %q", ds, failedLink)
	}
	tc, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort()})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	eventually(t, 20*time.Second, "every workflow closed", func() bool {
		r, err := tc.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: "ExecutionStatus = 'Running'"})
		return err == nil && r.GetCount() == 0
	})

	dir := t.TempDir()
	if os.Getenv("HOOKD_SCREENSHOTS") != "" {
		dir = filepath.Join("..", "docs")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.WindowSize(1400, 1000))
	actx, stop := chromedp.NewExecAllocator(context.Background(), opts...)
	defer stop()
	bctx, stop := chromedp.NewContext(actx)
	defer stop()
	bctx, stop = context.WithTimeout(bctx, 60*time.Second)
	defer stop()

	// shows loads a page and waits until its text holds want (the Web UI renders in the browser).
	shows := func(url, want, file string) string {
		t.Helper()
		var text string
		var shot []byte
		if err := chromedp.Run(bctx, chromedp.Navigate(url)); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(30 * time.Second); ; {
			if err := chromedp.Run(bctx, chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &text)); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text, want) || time.Now().After(end) {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		time.Sleep(time.Second) // the rest of the page finishes rendering
		if err := chromedp.Run(bctx, chromedp.Evaluate(`document.body.innerText`, &text), chromedp.CaptureScreenshot(&shot)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), shot, 0o644); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, want) {
			t.Fatalf("%s never showed %q (screenshot %s):\n%s", url, want, file, text)
		}
		return text
	}
	// The list: both delivery workflows and the event's, each with its status.
	list := shows(ui+"/namespaces/default/workflows", "delivery/", "webui-failed-list.png")
	if !strings.Contains(list, "Failed") || !strings.Contains(list, "Completed") {
		t.Errorf("the list does not tell failed from completed:\n%s", list)
	}
	// The failed delivery's page, reached through the API's link: its failure says why.
	page := shows(failedLink, "gave up after 3 attempts", "webui-failed-delivery.png")
	if !strings.Contains(page, "Failed") || !strings.Contains(page, "503") {
		t.Errorf("the failed delivery's page:\n%s", page)
	}
}
