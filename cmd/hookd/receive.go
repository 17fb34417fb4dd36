package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/hookd/hookd/signature"
)

// receive runs a demo receiver that prints each callback and whether its signature verifies,
// the way a real receiver would use the signature package.
func receive(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("receive", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9000", "address to listen on")
	secret := fs.String("secret", os.Getenv("HOOKD_RECEIVER_SECRET"), "subscription secret (whsec_...) or public key (whpk_...) to verify with")
	status := fs.Int("status", http.StatusOK, "status to answer with (try 500 to see retries)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		verdict := "no secret given, not verified"
		if *secret != "" {
			if err := (signature.Verifier{Secret: *secret}).Verify(r.Header, body); err != nil {
				verdict = "INVALID: " + err.Error()
			} else {
				verdict = "signature ok"
			}
		}
		fmt.Printf("%s POST %s webhook-id=%s attempt=%s (%s)\n  %s\n", time.Now().Format(time.TimeOnly), r.URL.Path,
			r.Header.Get(signature.HeaderID), r.Header.Get("webhook-attempt"), verdict, body)
		w.WriteHeader(*status)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	fmt.Printf("receiving on http://%s (answering %d)\n", *addr, *status)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
