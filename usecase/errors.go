package usecase

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/lib/pq"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/engine"
)

// Kind is what went wrong, in terms a front door maps to its own answer (the REST API to a
// status, the portal to a message next to a form field).
type Kind int

const (
	// Internal: a fault of hookd's own; the front door logs it and shows no detail.
	Internal Kind = iota
	// Invalid: the input is wrong (Field names it when one field is at fault).
	Invalid
	// TooLarge: the input is too large (a payload over the limit).
	TooLarge
	// Unprocessable: the input is well-formed but breaks a rule of its content (a schema).
	Unprocessable
	// NotFound: no such thing, or not one the caller may see.
	NotFound
	// Forbidden: the caller may see it but not do this to it.
	Forbidden
	// Conflict: the thing is not in a state that allows this (a pending delivery's replay).
	Conflict
	// RateLimited: too many of these; try again after RetryAfter.
	RateLimited
	// Unavailable: the database or the engine could not be reached; try again shortly.
	Unavailable
)

// Error is a use case's refusal: what kind, which field, why. Its message is what the caller is
// shown ("field: reason").
type Error struct {
	Kind   Kind
	Field  string // the input field at fault, "" when it is not one field
	Reason string
	// RetryAfter is when a RateLimited request may be made again.
	RetryAfter time.Duration
	// Err is the cause when it carries more for the caller: a *filter.Error (path and limit),
	// *SchemaViolations, db.ErrNotFound.
	Err error
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Reason
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

func invalid(field, reason string, args ...any) *Error {
	return &Error{Kind: Invalid, Field: field, Reason: fmt.Sprintf(reason, args...)}
}

func notFound(reason string, args ...any) *Error {
	return &Error{Kind: NotFound, Reason: fmt.Sprintf(reason, args...), Err: db.ErrNotFound}
}

func conflict(reason string, args ...any) *Error {
	return &Error{Kind: Conflict, Reason: fmt.Sprintf(reason, args...)}
}

func forbidden(reason string, args ...any) *Error {
	return &Error{Kind: Forbidden, Reason: fmt.Sprintf(reason, args...)}
}

// KindOf says what kind of failure err is: a use case's *Error says so itself; the layers'
// sentinel errors (db.ErrNotFound, db.ErrConflict), PostgreSQL refusing a value (class 22: the
// caller's input) and a dependency out of reach are recognised; anything else is Internal.
func KindOf(err error) Kind {
	var ue *Error
	var pqErr *pq.Error
	switch {
	case err == nil:
		return Internal
	case errors.As(err, &ue):
		return ue.Kind
	case errors.As(err, &pqErr) && pqErr.Code.Class() == "22":
		return Invalid
	case errors.Is(err, db.ErrNotFound):
		return NotFound
	case errors.Is(err, db.ErrConflict):
		return Conflict
	case IsUnavailable(err):
		return Unavailable
	}
	return Internal
}

// IsUnavailable tells whether err says the database or the engine could not be reached, or did
// not answer in time: the request may be tried again shortly.
func IsUnavailable(err error) bool {
	var (
		netErr net.Error
		opErr  *net.OpError
		dnsErr *net.DNSError
		pqErr  *pq.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), engine.Unavailable(err):
		return true
	case errors.As(err, &pqErr):
		// 57P: operator intervention (admin shutdown, cannot connect now); 08: connection exceptions;
		// 53: insufficient resources (too many connections).
		c := pqErr.Code
		return c.Class() == "08" || c.Class() == "53" || c.Class() == "57"
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		// A connection that closed under a query (PostgreSQL restarting) answers EOF.
		return true
	case errors.As(err, &dnsErr), errors.As(err, &opErr):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	}
	return false
}
