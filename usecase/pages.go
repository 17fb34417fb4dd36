package usecase

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// EncodeCursor makes an opaque page cursor of a name and a number.
func EncodeCursor(name string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10) + ":" + name))
}

// DecodeCursor reads a cursor EncodeCursor made ("" reads as zero values).
func DecodeCursor(s string) (string, int64, error) {
	if s == "" {
		return "", 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", 0, err
	}
	idStr, name, ok := strings.Cut(string(b), ":")
	if !ok {
		return "", 0, errors.New("bad cursor")
	}
	id, err := strconv.ParseInt(idStr, 10, 64)
	return name, id, err
}

// TrimPage cuts a listing read with limit+1 rows to limit and returns the cursor of the next page
// ("" on the last page): the extra row only tells that there is one.
func TrimPage[T any](rows []T, limit int, cursor func(last T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, cursor(rows[limit-1])
}
