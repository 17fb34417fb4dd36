package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/keyring"
	"github.com/hookd/hookd/service"
)

func TestListeningPIDFindsTheListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if got := listeningPID(port); got != os.Getpid() {
		t.Fatalf("listeningPID(%d) = %d, want this process %d", port, got, os.Getpid())
	}
	pids, err := targetPIDs("http://127.0.0.1:"+strconv.Itoa(port), "")
	if err != nil || len(pids) != 1 || pids[0] != os.Getpid() {
		t.Fatalf("targetPIDs = %v, %v", pids, err)
	}
	if pids, err := targetPIDs("http://x:1", "12, 34"); err != nil || len(pids) != 2 || pids[1] != 34 {
		t.Fatalf("explicit pids: %v, %v", pids, err)
	}
	ln.Close()
	if got := listeningPID(port); got != 0 {
		t.Fatalf("listeningPID(%d) after close = %d, want 0", port, got)
	}
}

// TestTargetModeDrivesARunningHookd: -target measures a hookd it did not start, through its API
// only: every delivery arrives and is counted, and the CPU of hookd's process (here the test's own,
// found by its listening port), the server and PostgreSQL is reported.
func TestTargetModeDrivesARunningHookd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp, err := testenv.StartTemporal(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Stop()
	db, err := testenv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Drop(context.Background())
	keys, err := keyring.Generate("t")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL, cfg.TemporalAddress, cfg.TemporalNamespace = db.URL, tmp.HostPort, "default"
	cfg.TaskQueue, cfg.HTTPAddr, cfg.OperatorKey, cfg.SMTPAddr = "target-test", "127.0.0.1:0", "op-key", "127.0.0.1:1"
	cfg.AllowPrivate, cfg.SearchAttributes = true, true
	if cfg.EncryptionKeys, err = keyring.Parse(keys); err != nil {
		t.Fatal(err)
	}
	log, _ := serviceLogger("error")
	app, err := service.Start(ctx, cfg, log, true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()

	opt := options{Target: app.URL, Temporal: tmp.HostPort, OperatorKey: "op-key", Concurrency: 4, SkipBaselines: true,
		SkipFixed: true, Wait: 60, Out: filepath.Join(t.TempDir(), "out.json"), Scenarios: "20x3"}
	b := &bench{opt: opt, res: &Results{Options: opt}, nonce: "tt"}
	b.svcLog, b.svcLevel = serviceLogger("error")
	if err := b.runTarget(ctx, []scenarioSize{{20, 3}}); err != nil {
		t.Fatal(err)
	}
	if len(b.res.Scenarios) != 1 {
		t.Fatalf("%d scenarios", len(b.res.Scenarios))
	}
	s := b.res.Scenarios[0]
	if s.Accepted != 20 || s.Arrived != 60 || s.Missing != 0 || s.Duplicates != 0 {
		t.Fatalf("accepted %d, arrived %d, missing %d, dup %d; want 20, 60, 0, 0", s.Accepted, s.Arrived, s.Missing, s.Duplicates)
	}
	if s.CPU.HookdSec <= 0 || s.CPUPerDelivery.System <= 0 || s.APIAnswer.Count != 20 {
		t.Fatalf("cpu %+v, per delivery %+v, publish answers %d", s.CPU, s.CPUPerDelivery, s.APIAnswer.Count)
	}
	if _, err := os.Stat(opt.Out); err != nil {
		t.Fatal(err)
	}
}
