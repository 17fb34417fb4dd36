// Package mail sends plain-text notification e-mails over SMTP.
package mail

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// SMTP sends through one relay without authentication (a local MTA or a sink such as Mailpit).
type SMTP struct {
	Addr   string
	From   string
	Tracer trace.Tracer // nil: no spans
}

// Send delivers one message. It honours ctx for the dial and overall deadline.
func (s SMTP) Send(ctx context.Context, to, subject, body string) (err error) {
	if to == "" {
		return nil
	}
	if s.Tracer != nil {
		var span trace.Span
		// The address stays out of the span: traces leave for a collector, e-mail addresses are personal.
		ctx, span = s.Tracer.Start(ctx, "smtp send", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("server.address", s.Addr), attribute.String("mail.subject", oneLine(subject))))
		defer func() {
			if err != nil {
				span.SetStatus(codes.Error, "smtp send failed") // err names the recipient
			}
			span.End()
		}()
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("mail to %s: %w", to, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	host, _, _ := net.SplitHostPort(s.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("mail to %s: %w", to, err)
	}
	defer c.Close()
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("mail from %s: %w", s.From, err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("mail rcpt %s: %w", to, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("mail data: %w", err)
	}
	msg := "From: " + s.From + "\r\nTo: " + to + "\r\nSubject: " + oneLine(subject) +
		"\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.ReplaceAll(body, "\n", "\r\n")
	if _, err := w.Write([]byte(msg)); err != nil {
		return fmt.Errorf("mail write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("mail close: %w", err)
	}
	return c.Quit()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
