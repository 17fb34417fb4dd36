package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hookd/hookd/signature"
)

// secretList is the receiver's -secret flag: repeated or comma-separated, so one receiver can
// check a subscription's deliveries (its whsec_/whpk_ secret) and what hookd signs with the app's
// own secret (async callbacks, operational webhooks).
type secretList []string

func (s *secretList) String() string { return fmt.Sprintf("%d secrets", len(*s)) }

func (s *secretList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// receive runs a demo receiver that prints each callback and whether its signature verifies,
// the way a real receiver would use the signature package.
func receive(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("receive", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9000", "address to listen on")
	var secrets secretList
	_ = secrets.Set(os.Getenv("HOOKD_RECEIVER_SECRET"))
	fs.Var(&secrets, "secret", "a secret (whsec_...) or public key (whpk_...) to verify with; repeat it or separate several with commas "+
		"(a subscription's secret and the app's, for callbacks and operational webhooks); default $HOOKD_RECEIVER_SECRET")
	status := fs.Int("status", http.StatusOK, "status to answer with (try 500 to see retries)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv := &http.Server{Addr: *addr, Handler: receiveHandler(os.Stdout, secrets, *status), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	fmt.Printf("receiving on http://%s (answering %d, verifying with %d secrets)\n", *addr, *status, len(secrets))
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// receiveHandler prints each request to out with its verdict: verified by which of the secrets
// (numbered from 1 in the order given), or INVALID with every secret's reason.
func receiveHandler(out io.Writer, secrets []string, status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		fmt.Fprintf(out, "%s POST %s webhook-id=%s attempt=%s (%s)\n  %s\n", time.Now().Format(time.TimeOnly), r.URL.Path,
			r.Header.Get(signature.HeaderID), r.Header.Get("webhook-attempt"), verdict(secrets, r.Header, body), body)
		w.WriteHeader(status)
	})
}

func verdict(secrets []string, h http.Header, body []byte) string {
	if len(secrets) == 0 {
		return "no secret given, not verified"
	}
	var why []string
	for i, s := range secrets {
		err := (signature.Verifier{Secret: s}).Verify(h, body)
		if err == nil {
			if len(secrets) == 1 {
				return "signature ok"
			}
			return fmt.Sprintf("signature ok with secret %d (%s…)", i+1, s[:min(len(s), 9)])
		}
		why = append(why, err.Error())
	}
	if len(secrets) == 1 {
		return "INVALID: " + why[0]
	}
	return "INVALID with each of the " + fmt.Sprint(len(secrets)) + " secrets: " + strings.Join(why, "; ")
}
