package signature

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustUnix(t *testing.T, s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("accepted unparsable timestamp %q", s)
	}
	return time.Unix(n, 0)
}

func splitFields(s string) []string { return strings.Fields(s) }
