package webhook

import (
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html/charset"
)

// What a receiver sends is hostile: any bytes, in any size. Everything of it that hookd keeps (the
// body excerpt, a few response headers, error texts that quote the peer) goes into PostgreSQL text
// and jsonb columns, which refuse invalid UTF-8 and NUL (text: 0x00; jsonb: \u0000). So every such
// string is made valid UTF-8 without NUL, and bounded, here, where it is read.

const (
	// MaxHeaderValue bounds a stored response header value, in bytes.
	MaxHeaderValue = 512
	// MaxErrorText bounds a stored transport error text, in bytes (Go quotes the peer's bytes
	// in some of them: a malformed header line can be the whole 256 KiB header block).
	MaxErrorText = 512
	// binaryShare is the share of non-text characters (invalid UTF-8, control characters other
	// than whitespace) above which a body is shown as binary: random bytes and compressed data
	// are about half; text with a stray NUL or a wrong byte is far below.
	binaryShare = 0.25
)

// excerpt makes the stored excerpt of a body: raw is its first MaxBodyExcerpt bytes, total how
// many bytes were read in all (more: the body went on beyond them), contentType the answer's
// Content-Type. Text is kept as text: UTF-8 as it is, cut on a character boundary; another
// declared charset (Latin-1, Windows-1252, Shift_JIS…) converted to UTF-8; a stray invalid byte or
// NUL replaced with U+FFFD. Anything else is shown as a marker with its size, like a browser's
// network panel ("[binary body, 4096 bytes, not shown]"): a hex dump in a ledger helps nobody.
func excerpt(raw []byte, total int64, more bool, contentType string) string {
	if len(raw) == 0 {
		return ""
	}
	b := trimPartialRune(raw, total > int64(len(raw)))
	if !utf8.Valid(b) {
		if dec := declaredDecoder(contentType); dec != nil {
			if out, err := dec(raw); err == nil {
				b = out
			}
		}
	}
	if isBinary(b) {
		size := fmt.Sprintf("%d bytes", total)
		if more {
			size = fmt.Sprintf("more than %d bytes", total)
		}
		return "[binary body, " + size + ", not shown]"
	}
	return Clean(string(b), MaxBodyExcerpt)
}

// trimPartialRune drops the start of a UTF-8 character that the excerpt limit cut off, when the
// body went on (cut).
func trimPartialRune(b []byte, cut bool) []byte {
	if !cut {
		return b
	}
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// declaredDecoder returns a converter to UTF-8 for the charset a Content-Type names, or nil when
// it names none, or UTF-8, or one hookd does not know.
func declaredDecoder(contentType string) func([]byte) ([]byte, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["charset"] == "" {
		return nil
	}
	enc, name := charset.Lookup(params["charset"])
	if enc == nil || name == "utf-8" {
		return nil
	}
	return enc.NewDecoder().Bytes
}

// isBinary reports whether more than binaryShare of b's characters are not text.
func isBinary(b []byte) bool {
	chars, bad := 0, 0
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		chars++
		switch {
		case r == utf8.RuneError && n == 1:
			bad++
		case r < 0x20 && !strings.ContainsRune("\t\n\v\f\r\x1b", r), r == 0x7f:
			bad++
		}
	}
	return float64(bad) > binaryShare*float64(chars)
}

// Clean makes s safe to store and show: valid UTF-8 (invalid bytes become U+FFFD), no NUL (also
// U+FFFD), at most max bytes, cut on a character boundary with "…" when cut.
func Clean(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
